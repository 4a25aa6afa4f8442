"""`mdx` command line. Each module registers its commands on the one app, in the order `mdx --help` lists them."""

from mdx.cli import (  # noqa: F401
    commands_audit,
    commands_convert,
    commands_explain,  # after the runtime commands whose helpers it shares
    commands_fit,
    commands_pipeline,
    commands_runtime,
    commands_train,
)
from mdx.cli.app import app, main

__all__ = ["app", "main"]
