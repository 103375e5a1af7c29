"""Evaluation: perplexity (and, as later issues add them, task metrics, robustness, leakage)."""
