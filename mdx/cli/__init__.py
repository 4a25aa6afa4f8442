"""`mdx` command line. Each module registers its commands on the one app."""

from mdx.cli import commands_audit, commands_convert, commands_fit, commands_pipeline, commands_runtime, commands_train  # noqa: F401
from mdx.cli.app import app, main

__all__ = ["app", "main"]
