"""Errors the runtime raises. `runtime/` imports no sibling package, so it carries its own small
hierarchy; `mdx.errors` re-uses these classes so the CLI catches one hierarchy."""


class RuntimeHarnessError(Exception):
    """Base of every error the runtime harness raises on purpose."""

    exit_code = 1


class InputDataError(RuntimeHarnessError):
    """Images, folders or arrays are missing or unusable."""


class ModelLoadError(RuntimeHarnessError):
    """A .tflite model is missing, corrupt, or cannot be loaded by the chosen runtime."""


class OutputError(RuntimeHarnessError):
    """An output file or folder cannot be written: the disk is full, or the folder is read-only."""


class UsageError(RuntimeHarnessError):
    """Options are missing or conflict (exit code 2)."""

    exit_code = 2


class ToleranceError(RuntimeHarnessError):
    """A parity tolerance failed (exit code 3)."""

    exit_code = 3


class RemoteError(RuntimeHarnessError):
    """A run on another machine over SSH failed: unreachable, refused, or the harness failed there."""
