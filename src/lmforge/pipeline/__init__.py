"""Pipelines: a model's life as a YAML list of lmforge steps."""
