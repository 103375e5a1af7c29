"""The MLflow-backed store: tracking runs, model versions, aliases and their verification."""
