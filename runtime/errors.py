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


class HarnessWarning(UserWarning):
    """Something the user should know that does not stop the run (e.g. a label name that repeats).

    Library code warns; each command line shows it as one `warning: …` line (`show_warnings_on_one_line`).
    """


def show_warnings_on_one_line() -> None:
    """Make `warnings.warn(..., HarnessWarning)` print `warning: MESSAGE` on stderr, without file or source line.

    Idempotent: a second call (tests call `main` many times) installs nothing more.
    """
    import sys
    import warnings

    default = warnings.showwarning
    if getattr(default, "one_line", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, HarnessWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    show.one_line = True  # type: ignore[attr-defined]
    warnings.showwarning = show
