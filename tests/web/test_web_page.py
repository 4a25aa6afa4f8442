"""The exported web page in real headless Chromium: the harness's decisions and probabilities, same-origin
requests only, and bad inputs that show an error and leave the page usable.

The pages are exported from the committed golden models (16x16, binary): fp32, and the quantized model
with uint8 io as the int8 page (LiteRT.js 2.5.3 reads no int8 tensors; that export is refused).
"""

from __future__ import annotations

import functools
import json
import shutil
import struct
import threading
import zlib
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mdx.cli import app
from mdx.errors import ArtifactError

runner = CliRunner()


def _golden(page: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    index = json.loads((page / "golden" / "golden.json").read_text())
    return [page / "golden" / image["file"] for image in index["images"]], index["images"]


def _tolerance(page: Path) -> float:
    """1e-4 for float outputs; one quantization step of the output tensor for a quantized one."""
    output = json.loads((page / "model_config.json").read_text())["output"]
    return 1e-4 if output["dtype"] == "float32" else float(output["scale"]) * 1.0001


def _mismatches(shown: dict[str, Any], images: list[dict[str, Any]], tolerance: float) -> list[str]:
    """Every way the page's results differ from the harness's: count, order, the exact input tensor,
    decision, probabilities (a one-level mean change may not move an int8 output, but moves the input)."""
    results = shown["results"]
    problems = [] if len(results) == len(images) else [f"{len(results)} results for {len(images)} images"]
    for got, want in zip(results, images):
        if got["file"] != want["file"]:
            problems.append(f"{got['file']} shown where {want['file']} was expected")
        if got["input_sha256"] != want["input_sha256"]:
            problems.append(f"{want['file']}: the input tensor differs from the harness's (preprocessing)")
        if got["index"] != want["class_index"]:
            problems.append(f"{want['file']}: class {got['index']}, harness {want['class_index']}")
        worst = max(abs(a - b) for a, b in zip(got["probabilities"], want["probabilities"]))
        if worst > tolerance:
            problems.append(f"{want['file']}: probabilities {got['probabilities']} vs {want['probabilities']}")
    return problems


def _same_origin(browser: Any, origin: str) -> None:
    assert browser.requests, "no request was recorded: the recording is broken"
    foreign = [url for url in browser.requests if not url.startswith((origin + "/", "blob:", "data:"))]
    assert not foreign, f"requests to other origins: {foreign}"


@pytest.mark.parametrize("name", ["fp32", "int8"])
def test_web_page_golden_images_match_harness_decisions_and_probabilities(
        name: str, pages: dict[str, Path], browser: Any, serve: Any) -> None:
    page = pages[name]
    server = serve(page)
    assert browser.open(f"{server.origin}/index.html") == "ready", browser.page()["errors"]
    paths, images = _golden(page)
    shown = browser.feed(paths)
    assert _mismatches(shown, images, _tolerance(page)) == []
    assert not shown["errors"] and not browser.exceptions and not browser.crashed
    assert "Research software, not a medical device" in shown["disclaimer"]
    # mdx serve's headers isolate the page, so LiteRT.js runs its threaded wasm
    assert shown["isolated"] is True and "threads (cross-origin isolated)" in shown["facts"]
    assert "threshold 0.55 on PNEUMONIA (Youden's J on validation)" in shown["facts"]
    assert all(r["ms"] > 0 for r in shown["results"])
    _same_origin(browser, server.origin)
    assert "/litert/wasm/litert_wasm_threaded_internal.wasm" in server.paths and "/model.tflite" in server.paths


@pytest.mark.parametrize("name", ["fp32", "int8"])
def test_web_page_mean_off_by_one_level_differs_from_harness(
        name: str, pages: dict[str, Path], browser: Any, serve: Any, tmp_path: Path) -> None:
    page = shutil.copytree(pages[name], tmp_path / "page")
    config = json.loads((page / "model_config.json").read_text())
    config["input"]["mean"][0] += 1.0  # one pixel level on the red channel
    (page / "model_config.json").write_text(json.dumps(config))
    server = serve(page)
    assert browser.open(f"{server.origin}/index.html") == "ready"
    paths, images = _golden(page)
    assert _mismatches(browser.feed(paths), images, _tolerance(page)) != []


def _huge_png(path: Path, side: int = 20000) -> Path:
    """A valid side x side 1-bit grey PNG: a few hundred KB on disk, 1.6 GB once decoded to RGBA."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + side // 8)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def test_web_page_bad_files_show_errors_and_page_keeps_classifying(
        pages: dict[str, Path], browser: Any, serve: Any, tmp_path: Path, web: Any) -> None:
    page = pages["fp32"]
    server = serve(page)
    assert browser.open(f"{server.origin}/index.html") == "ready"
    not_image = tmp_path / "notes.png"
    not_image.write_text("these are notes, not an image\n")
    huge = _huge_png(tmp_path / "huge.png")
    paths, images = _golden(page)
    jpeg = min((web.XRAYS / "NORMAL").glob("*.jpeg"))  # 224 px: decoded and resized by the browser
    shown = browser.feed([not_image, huge, jpeg, paths[0]])
    assert shown["errors"] == [
        "notes.png: not a PNG or JPEG image; choose a .png or .jpg file",
        "huge.png: 20000 x 20000 pixels is more than this page's 40 megapixel limit; downscale it first",
    ]
    assert shown["results"][0]["file"] == jpeg.name and sum(shown["results"][0]["probabilities"]) == pytest.approx(1)
    shown["results"] = shown["results"][1:]
    assert _mismatches(shown, images[:1], _tolerance(page)) == []  # the page went on after both errors
    assert not browser.crashed and not browser.exceptions
    _same_origin(browser, server.origin)


def test_web_page_model_not_matching_config_shows_error_and_stays_responsive(
        pages: dict[str, Path], browser: Any, serve: Any, tmp_path: Path, web: Any) -> None:
    page = shutil.copytree(pages["fp32"], tmp_path / "page")
    shutil.copy(web.GOLDEN_MODELS / "binary_uint8" / "model.tflite", page / "model.tflite")
    server = serve(page)
    assert browser.open(f"{server.origin}/index.html") == "error"
    paths, _ = _golden(page)
    shown = browser.feed(paths[:1])
    assert shown["errors"][0].startswith("The model did not load: model.tflite sha256 ")
    assert "differs from model_config.json's" in shown["errors"][0]
    assert shown["errors"][1] == "0.png: not classified, the model did not load (see the first error)"
    assert shown["results"] == [] and not browser.crashed


def test_web_page_plain_http_server_runs_single_threaded(pages: dict[str, Path], browser: Any) -> None:
    """`python -m http.server` sends no COOP/COEP: the page is not isolated and runs on one thread."""
    page = pages["int8"]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=str(page)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        origin = f"http://127.0.0.1:{httpd.server_address[1]}"
        assert browser.open(f"{origin}/index.html") == "ready"
        paths, images = _golden(page)
        shown = browser.feed(paths)
        assert shown["isolated"] is False and "1 thread (not cross-origin isolated" in shown["facts"]
        assert _mismatches(shown, images, _tolerance(page)) == []
        _same_origin(browser, origin)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_export_web_record_lists_every_copied_file_with_sha256(pages: dict[str, Path]) -> None:
    from mdx.export_web import RUNTIME_FILES
    from mdx.runtime.files import sha256_file

    page = pages["fp32"]
    record = json.loads((page / "record.json").read_text())
    assert record["stage"] == "export-web" and record["litertjs_version"] == "2.5.3"
    copied = {entry["path"]: entry for entry in record["runtime_files"]}
    assert sorted(copied) == sorted(RUNTIME_FILES.values())
    for path, entry in copied.items():
        assert entry["sha256"] == sha256_file(page / path)
    config = json.loads((page / "model_config.json").read_text())
    assert config["model"]["sha256"] == sha256_file(page / "model.tflite")
    assert set(config) >= {"labels", "input", "output", "decision", "source"}


def test_export_web_int8_io_model_is_refused_naming_the_fix(chromium: str, tmp_path: Path, web: Any) -> None:
    from mdx.export_web import WebExportConfig, export_web

    run = web.make_run(tmp_path / "run", "int8", web.GOLDEN_MODELS / "binary_int8" / "model.tflite")
    with pytest.raises(ArtifactError, match=r"input is int8; LiteRT.js 2.5.3 reads float32 and uint8 .* --io uint8"):
        export_web(run, WebExportConfig(variant="int8", out=tmp_path / "page", litertjs=web.LITERTJS))
    assert not (tmp_path / "page").exists()


def test_export_web_cli_refuses_android_options_and_missing_litertjs(tmp_path: Path, web: Any) -> None:
    run = web.make_run(tmp_path / "run", "fp32", web.GOLDEN_MODELS / "binary_fp32" / "model.tflite")
    result = runner.invoke(app, ["export", "web", str(run), "--variant", "fp32", "--app", "android_demo"])
    assert result.exit_code == 2 and "--app is for mdx export android" in result.output  # bad usage
    result = runner.invoke(app, ["export", "android", str(run), "--variant", "fp32", "--patch", "4"])
    assert result.exit_code == 2 and "the Android app has none: drop them" in result.output
    result = runner.invoke(app, ["export", "web", str(run), "--variant", "fp32", "--patch", "99", "--out",
                                 str(tmp_path / "page"), "--litertjs", str(web.LITERTJS)])
    assert result.exit_code == 2 and "99" in result.output and not (tmp_path / "page").exists(), result.output
    result = runner.invoke(app, ["export", "web", str(run), "--variant", "fp32", "--litertjs", str(tmp_path / "none")])
    assert result.exit_code == 1 and "npm ci --prefix web" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code == 1 and "pass a folder written by mdx export web" in result.output
