"""lmforge: the whole life of a GPT-2-family language model in one package and CLI."""

import os
import sys

__version__ = "0.1.0"

# Nothing leaves the machine. MLflow 3 sends usage telemetry to its vendor from the first
# tracking call after `import mlflow`, and the Hugging Face hub client can too. Every path into
# them (the CLI, the server, library use) imports this package first, so the switches set here
# precede their import. Set, not defaulted: a stray `false` in the environment must not reopen
# the connection. DO_NOT_TRACK is the cross-tool convention (MLflow reads it as "true").
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}
os.environ.update(TELEMETRY_OFF)
# A program that imported mlflow before lmforge already has a telemetry client: drop it
# (mlflow re-reads the switch here and keeps none).
if (_mlflow_telemetry := sys.modules.get("mlflow.telemetry")) is not None:
    _mlflow_telemetry.set_telemetry_client()
