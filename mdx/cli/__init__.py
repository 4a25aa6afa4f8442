"""`mdx` command line. Each module registers its commands on the one app."""

from mdx.cli import commands_fit, commands_train, commands_convert, commands_runtime, commands_pipeline  # noqa: F401
from mdx.cli.app import app, main

__all__ = ["app", "main"]
