"""The page's occlusion heatmap in real headless Chromium against runtime/occlusion.py's map in Python.

The golden models are 16 px, so the default sweep (patch 2, stride 2: 8 x 8 positions) costs 65 runs
an image and the four golden images take well under a second on the page.

Tolerance: a map pixel is a mean of drops `base - p(occluded)`, each a difference of two probabilities.
When the page's probabilities are within one output step of the harness's (int8: one quantization
step of the output, as the probability test allows; fp32: 1e-4, far above the 1e-7 a float32 kernel
difference gives), a mean of such drops is too, once base agrees; measured: the maps are equal to the
last bit on both pages. The planted errors below differ by 1-2 int8 steps and 30-70x the fp32 tolerance.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

STEP_TOLERANCE = 1.0001  # one output step, and a hair for the float32 rounding of the step itself


def _config(page: Path) -> dict[str, Any]:
    return json.loads((page / "model_config.json").read_text())


def _tolerance(page: Path) -> float:
    output = _config(page)["output"]
    return 1e-4 if output["dtype"] == "float32" else float(output["scale"]) * STEP_TOLERANCE


def _golden_paths(page: Path) -> list[Path]:
    index = json.loads((page / "golden" / "golden.json").read_text())
    return [page / "golden" / image["file"] for image in index["images"]]


def _python_maps(page: Path, paths: list[Path], targets: list[int]) -> list[np.ndarray]:
    """runtime's occlusion_map with runtime's default sweep (not the page's config), as mdx explain runs it."""
    from mdx.runtime.classifier import TfliteClassifier
    from mdx.runtime.explain import ExplainConfig, probability_fn
    from mdx.runtime.images import load_image
    from mdx.runtime.occlusion import occlusion_map
    from mdx.runtime.preprocess import Preprocessing

    given = _config(page)["input"]
    pre = Preprocessing(size=given["size"], mean=tuple(given["mean"]), std=tuple(given["std"]))
    classifier = TfliteClassifier(page / "model.tflite", threads=1)
    predict = probability_fn(classifier.predict_raw, classifier)
    sweep = ExplainConfig().occlusion(pre.size, pre)
    return [occlusion_map(predict, pre.normalize(load_image(path, pre.size)), target, sweep)[0]
            for path, target in zip(paths, targets)]


def _map_mismatches(got: list[np.ndarray], want: list[np.ndarray], tolerance: float) -> list[str]:
    """Each image whose page map differs from the harness's by more than `tolerance` at some pixel."""
    problems = [] if len(got) == len(want) else [f"{len(got)} maps for {len(want)} images"]
    for k, (a, b) in enumerate(zip(got, want)):
        worst = float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
        if worst > tolerance:
            problems.append(f"image {k}: map differs by {worst:.3g} (> {tolerance:.3g})")
    return problems


def _page_maps(browser: Any, page: Path, paths: list[Path]) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    shown = browser.feed(paths)
    assert not shown["errors"] and not browser.exceptions and not browser.crashed
    size = _config(page)["input"]["size"]
    heatmaps = browser.heatmaps()
    assert [h["file"] for h in heatmaps] == [p.name for p in paths]
    return [np.asarray(h["map"], dtype=np.float32).reshape(size, size) for h in heatmaps], heatmaps


@pytest.mark.parametrize("name", ["fp32", "int8"])
def test_web_heatmap_golden_images_match_runtime_occlusion_map(
        name: str, pages: dict[str, Path], browser: Any, serve: Any) -> None:
    page = pages[name]
    server = serve(page)
    assert browser.open(f"{server.origin}/index.html") == "ready", browser.page()["errors"]
    paths = _golden_paths(page)
    got, heatmaps = _page_maps(browser, page, paths)
    index = json.loads((page / "golden" / "golden.json").read_text())
    # the map follows the decided class, as mdx explain does; base is that class's probability
    assert [h["target"] for h in heatmaps] == [image["class_index"] for image in index["images"]]
    want = _python_maps(page, paths, [h["target"] for h in heatmaps])
    tolerance = _tolerance(page)
    assert _map_mismatches(got, want, tolerance) == []
    assert all(h["runs"] == 65 for h in heatmaps)  # 8 x 8 positions + the unoccluded run
    assert any(float(np.abs(m).max()) > tolerance for m in want)  # the maps are not all within tolerance of 0
    # a map put in the wrong place fails the comparison: transposed, or shifted by one pixel
    assert _map_mismatches([m.T for m in got], want, tolerance) != []
    assert _map_mismatches([np.roll(m, 1, axis=1) for m in got], want, tolerance) != []
    rows = browser.evaluate("[...document.querySelectorAll('#results tbody tr')].map(r => "
                            "[r.dataset.heatmap, r.querySelectorAll('.heatmap canvas').length])")
    assert rows == [["done", 1]] * len(paths)
    assert "heatmap: occlusion patch 2 px, stride 2 px" in browser.page()["facts"]
    foreign = [url for url in browser.requests if not url.startswith((server.origin + "/", "blob:", "data:"))]
    assert not foreign and "/occlusion.js" in server.paths


@pytest.mark.parametrize("name", ["fp32", "int8"])
def test_web_heatmap_patch_off_by_one_differs_from_runtime(
        name: str, pages: dict[str, Path], browser: Any, serve: Any, tmp_path: Path) -> None:
    page = shutil.copytree(pages[name], tmp_path / "page")
    config = _config(page)
    config["occlusion"]["patch"] += 1  # 3 px patches at stride 2: what a port with an off-by-one would run
    (page / "model_config.json").write_text(json.dumps(config))
    server = serve(page)
    assert browser.open(f"{server.origin}/index.html") == "ready"
    paths = _golden_paths(page)
    got, heatmaps = _page_maps(browser, page, paths)
    want = _python_maps(page, paths, [h["target"] for h in heatmaps])
    assert _map_mismatches(got, want, _tolerance(page)) != []


def test_web_heatmap_invalid_sweep_shows_error_and_switch_skips_maps(
        pages: dict[str, Path], browser: Any, serve: Any, tmp_path: Path) -> None:
    page = shutil.copytree(pages["fp32"], tmp_path / "page")
    config = _config(page)
    server = serve(page)
    assert browser.open(f"{server.origin}/index.html") == "ready"
    browser.evaluate("document.getElementById('heatmaps').checked = false")
    paths = _golden_paths(page)
    shown = browser.feed(paths[:1])
    assert len(shown["results"]) == 1 and browser.heatmaps() == []
    assert browser.evaluate("document.querySelector('#results tbody tr').dataset.heatmap") == "off"
    config["occlusion"]["stride"] = config["occlusion"]["patch"] + 1  # pixels between patches never occluded
    (page / "model_config.json").write_text(json.dumps(config))
    assert browser.open(f"{server.origin}/index.html") == "error"
    assert browser.page()["errors"][0].startswith('The model did not load: model_config.json occlusion {"patch":2,')
