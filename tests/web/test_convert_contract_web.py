"""The real contract for the page: a tiny Keras run through `mdx convert` (fp32 + int8, default float32 io
and uint8 io),
`mdx export web`, and the page in headless Chromium on both. Proves the export reads what convert
writes, including its dynamic batch dimension, which the page's copy fixes at 1."""

from __future__ import annotations

import importlib.util
import json
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mdx.cli import app as cli

pytestmark = [
    pytest.mark.tf,
    pytest.mark.slow,
    pytest.mark.skipif(find_spec("tf_keras") is None, reason="needs TensorFlow and tf-keras (the [train] extra)"),
]
runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def _tiny_run(run: Path, data: Path, labels: list[str]) -> Path:
    """tests/android/test_convert_contract.py's tiny RUN/train (one builder for both exports' contract tests)."""
    spec = importlib.util.spec_from_file_location("mdx_android_contract", ROOT / "tests/android/test_convert_contract.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module._tiny_run(run, data, labels)


@pytest.mark.parametrize("io", ["float32", "uint8"])
def test_convert_then_export_web_fp32_and_int8_page_matches_harness(
        tmp_path: Path, xray_subset: Any, web: Any, chromium: str, browser: Any, serve: Any, io: str) -> None:
    """The default int8 (float32 io around the int8 body) and --io uint8 both run on the page."""
    from ai_edge_litert.interpreter import Interpreter

    from mdx.runtime.occlusion import default_occlusion

    run = _tiny_run(tmp_path / "run", xray_subset(4), web.LABELS)
    io_args = [] if io == "float32" else ["--io", io]
    done = runner.invoke(cli, ["convert", str(run), "--int8", *io_args, "--calibration-count", "8"])
    assert done.exit_code == 0, done.output
    for variant in ("fp32", "int8"):
        page = tmp_path / f"page_{variant}"
        sweep = ["--patch", "8", "--stride", "4"] if variant == "fp32" else []  # int8: mdx explain's default
        done = runner.invoke(cli, ["export", "web", str(run), "--variant", variant, "--out", str(page),
                                   "--litertjs", str(web.LITERTJS), *sweep])
        assert done.exit_code == 0, done.output
        converted = Interpreter(str(run / "convert" / variant / "model.tflite")).get_input_details()[0]
        assert converted["shape_signature"][0] == -1  # what convert writes, and LiteRT.js cannot run as is
        config = json.loads((page / "model_config.json").read_text())
        assert config["input"]["dtype"] == {"fp32": "float32", "int8": io}[variant]
        default = default_occlusion(config["input"]["size"])
        assert (config["occlusion"]["patch"], config["occlusion"]["stride"]) == (
            (8, 4) if variant == "fp32" else (default.patch, default.stride)), config["occlusion"]
        server = serve(page)
        assert browser.open(f"{server.origin}/index.html") == "ready", browser.page()["errors"]
        index = json.loads((page / "golden" / "golden.json").read_text())
        shown = browser.feed([page / "golden" / image["file"] for image in index["images"]])
        # int8: one step of the quantized output (a float32 output dequantizes an int8 softmax: 1/256)
        tolerance = 1e-4 if variant == "fp32" else (config["output"]["scale"] or 1 / 256) * 1.0001
        assert [r["index"] for r in shown["results"]] == [i["class_index"] for i in index["images"]]
        assert [r["input_sha256"] for r in shown["results"]] == [i["input_sha256"] for i in index["images"]]
        for got, want in zip(shown["results"], index["images"]):
            assert max(abs(a - b) for a, b in zip(got["probabilities"], want["probabilities"])) <= tolerance
        assert not shown["errors"] and not browser.crashed
