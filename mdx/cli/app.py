"""The typer app and the one place that turns an `MdxError` into `error: …` and an exit code.

Stages are imported inside the command functions, so `mdx --help` never imports TensorFlow.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from mdx import interrupts
from mdx.errors import MdxError

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)


class _MdxGroup(TyperGroup):
    """Catches MdxError once for every command: one line on stderr, exit 1, 2 or 3."""

    def invoke(self, ctx: Any) -> Any:
        from rich.markup import escape

        from mdx.runtime.errors import show_warnings_on_one_line

        show_warnings_on_one_line()
        try:
            return super().invoke(ctx)
        except MdxError as exc:
            # escaped: a message may name an extra ('mdx[train]') that rich would take for markup and drop
            console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(getattr(exc, "exit_code", 1)) from None
        except KeyboardInterrupt:
            console.print("error: interrupted; nothing half-written was kept (rerun the command)")
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=_MdxGroup,
    name="mdx",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Train, quantize, prune and convert a medical image classifier to .tflite, and prove parity at every step.",
)


def not_built(command: str, issue: str) -> None:
    """Commands listed before they are built say so and exit 2 (usage)."""
    console.print(f"error: `mdx {command}` is not built yet (tracked in {issue}); see README.md for what works today")
    raise typer.Exit(2)


def log(message: str) -> None:
    console.print(message, soft_wrap=True)


def main() -> None:
    """Run the mdx command line: SIGINT (Ctrl-C) and SIGTERM remove staging folders and exit 130.

    A caller that starts mdx with SIGINT ignored (`cmd &` in a script, `nohup`, CI runners that start jobs
    so) keeps it ignored: POSIX asks a child to keep ignoring what its caller ignores, so Ctrl-C meant for
    the foreground does not reach background work. SIGTERM still stops mdx cleanly then.
    """
    # SIGTERM (kill, systemd, CI timeouts) unwinds like Ctrl-C, so staging folders are removed on the way out
    signal.signal(signal.SIGTERM, interrupts.handler)
    # Python leaves an inherited SIG_IGN alone; say so here rather than rely on it, and take SIGINT otherwise
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, interrupts.handler)
    app(prog_name="mdx")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
