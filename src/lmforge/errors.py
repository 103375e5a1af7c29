"""One exception tree and the CLI's exit codes. The CLI turns every `LmforgeError` into a
one-line message and its class's exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The documented exit statuses of `lmforge` (README, `lmforge --help`)."""

    OK = 0
    ERROR = 1  # an unexpected error, a crash, or a check that found a problem
    CONFIG = 2
    DATA = 3
    MODEL = 4
    REGISTRY = 5
    ENGINE = 6
    MISSING_DEPENDENCY = 7
    GATE_REFUSED = 8  # a candidate regressed beyond the gate: an answer, not a failure
    INTERRUPTED = 130


EXIT_CODE_MEANINGS = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "error (or a failed check)",
    ExitCode.CONFIG: "bad option or config",
    ExitCode.DATA: "bad or missing data",
    ExitCode.MODEL: "bad or missing model",
    ExitCode.REGISTRY: "registry error",
    ExitCode.ENGINE: "inference engine error",
    ExitCode.MISSING_DEPENDENCY: "an optional extra is not installed",
    ExitCode.GATE_REFUSED: "the promotion gate refused the candidate",
    ExitCode.INTERRUPTED: "interrupted",
}


class LmforgeError(Exception):
    """Base of every error lmforge raises on purpose; `exit_code` is the CLI's exit status."""

    exit_code: int = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def one_line(self) -> str:
        text = str(self)
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(LmforgeError):
    """A bad option, config key or value; names the key and the bad value."""

    exit_code = ExitCode.CONFIG


class DataError(LmforgeError):
    """Input data that cannot be read or that leaves nothing to work with."""

    exit_code = ExitCode.DATA


class ModelError(LmforgeError):
    """A model dir or checkpoint that is missing, broken or inconsistent."""

    exit_code = ExitCode.MODEL


class RegistryError(LmforgeError):
    """The model registry refused or failed an operation."""

    exit_code = ExitCode.REGISTRY


class GateRefused(LmforgeError):
    """A candidate regressed beyond the promotion gate (`eval --baseline`, `registry promote`)."""

    exit_code = ExitCode.GATE_REFUSED


class EngineError(LmforgeError):
    """The inference engine could not run a request."""

    exit_code = ExitCode.ENGINE


class MissingDependencyError(LmforgeError):
    """An optional extra that a feature needs is not installed."""

    exit_code = ExitCode.MISSING_DEPENDENCY

    def __init__(self, feature: str, module: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs the '{module}' package",
            hint=f"install it with: pip install 'lmforge[{extra}]'",
        )


class Interrupted(LmforgeError):
    """The run was stopped by SIGINT/SIGTERM; partial output was removed."""

    exit_code = ExitCode.INTERRUPTED
