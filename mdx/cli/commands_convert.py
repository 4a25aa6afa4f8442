"""`mdx convert`, `mdx export`."""

from __future__ import annotations

from mdx.cli.app import app, not_built


@app.command("convert")
def convert_command() -> None:
    """Convert a trained model to .tflite variants: fp32 (always), fp16, dynamic, int8, int8-fallback."""
    not_built("convert", "issue 4")


@app.command("export")
def export_command() -> None:
    """Export a variant with its labels and golden vectors into the Android demo app."""
    not_built("export", "issue 8")
