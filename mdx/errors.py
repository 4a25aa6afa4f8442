"""One error hierarchy for every stage; the CLI catches `MdxError` once and prints one line.

Messages name the value, what was expected, and the fix. `runtime/` must run alone on a board, so
it owns the base classes and this module extends them: `MdxError` is `RuntimeHarnessError`.
"""

from mdx.runtime.errors import (  # noqa: F401 - OutputError: a write failed (disk full, read-only)
    InputDataError,
    ModelLoadError,
    OutputError,
    RemoteError,
    RuntimeHarnessError,
    ToleranceError,
    UsageError,
)

MdxError = RuntimeHarnessError


class ConfigError(UsageError):
    """A configuration value or a combination of options is invalid (exit code 2)."""


class DataError(InputDataError):
    """Input data (images, folders, arrays) is missing or unusable."""


class ArtifactError(ModelLoadError):
    """An artifact (model, record, output folder) is missing, corrupt, or would be overwritten."""


class ConversionError(MdxError):
    """TensorFlow could not convert or quantize a model."""


class CompatibilityError(MdxError):
    """A model uses an operator or version that the target runtime cannot load."""


class ParityError(ToleranceError):
    """A candidate model missed a tolerance against its reference (exit code 3)."""


class WorkerError(MdxError):
    """A worker of a multi-worker training run crashed or stopped answering."""
