"""One exception tree. The CLI turns every `LmforgeError` into a one-line message."""


class LmforgeError(Exception):
    """Base of every error lmforge raises on purpose; `exit_code` is the CLI's exit status."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def one_line(self) -> str:
        text = str(self)
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(LmforgeError):
    """A bad option, config key or value; names the key and the bad value."""

    exit_code = 2


class DataError(LmforgeError):
    """Input data that cannot be read or that leaves nothing to work with."""

    exit_code = 3


class ModelError(LmforgeError):
    """A model dir or checkpoint that is missing, broken or inconsistent."""

    exit_code = 4


class RegistryError(LmforgeError):
    """The model registry refused or failed an operation."""

    exit_code = 5


class EngineError(LmforgeError):
    """The inference engine could not run a request."""

    exit_code = 6


class MissingDependencyError(LmforgeError):
    """An optional extra that a feature needs is not installed."""

    exit_code = 7

    def __init__(self, feature: str, module: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs the '{module}' package",
            hint=f"install it with: pip install 'lmforge[{extra}]'",
        )


class Interrupted(LmforgeError):
    """The run was stopped by SIGINT/SIGTERM; partial output was removed."""

    exit_code = 130
