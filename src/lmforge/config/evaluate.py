"""Options of `lmforge eval`."""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.config import option


@dataclass
class EvalConfig:
    """Options of `lmforge eval` (the perplexity shorthand)."""

    model: str = option("", "Model dir or registry reference (models:/NAME@ALIAS).")
    perplexity: list[str] = option(
        [], "Text files to score, one document per line (comma-separated or repeated in YAML)."
    )
    context_length: int = option(0, "Window length in tokens (0 = the model's positions).")
    stride: int = option(0, "Tokens between window starts (0 = half the window).")
    batch_size: int = option(8, "Windows per forward pass.")
    report: str = option("", "Directory for report.json and report.md.")
    baseline: str = option("", "A second model to compare against (e.g. production).")
    max_regression: float = option(
        0.02, "With --baseline: the largest relative rise in word perplexity that passes."
    )
    force: bool = option(False, "Replace an existing report dir.")

    def problems(self) -> list[str]:
        out = []
        if not self.model:
            out.append("model: MODEL is required")
        if not self.perplexity:
            out.append("perplexity: give at least one --perplexity FILE")
        if not self.report:
            out.append("report: --report DIR is required")
        for name in ("context_length", "stride"):
            if getattr(self, name) < 0:
                out.append(f"{name}: {getattr(self, name)} is negative")
        if self.batch_size < 1:
            out.append(f"batch_size: {self.batch_size} must be at least 1")
        if self.max_regression < 0:
            out.append(f"max_regression: {self.max_regression} is negative")
        return out
