"""Per-image latency of the exported web page in headless Chromium, side by side with the Python harness.

For fp32 and int8 (uint8 io: LiteRT.js reads no int8 tensors) the run is exported with `mdx export web`
and timed four ways on the same machine, interleaved over rounds so load drifts hit all alike:

* python, 1 and 2 threads: `TfliteClassifier.predict_raw` on one preprocessed image (set_tensor,
  invoke, get_tensor, dequantize), as `mdx predict` runs it;
* browser, 1 thread: the page served without COOP/COEP (as `python -m http.server` does), so not
  cross-origin isolated and on LiteRT.js's single-threaded wasm;
* browser, threads: the page from `mdx serve` (isolated), on LiteRT.js's threaded wasm with
  min(cores, 4) threads.

The page's time is what it shows per image: `model.run()` plus reading the output (no decoding or
preprocessing), fed the first golden image N times through its file input with its heatmap switch
off. The first `--warmup` images of each round are dropped.

Heatmap time per image, the same four ways in the same rounds: the page's occlusion map (its
heatmap switch on; the default sweep, one model run per copy, yielding between slices) against
runtime's `occlusion_map` as `mdx explain` runs it (copies in batches of 32), on `--heatmap-images`
golden images a round. Reported: p50 and min per way and the browser/python ratios at equal threads
(min is the steadier one on a loaded machine: each way runs its images back to back within a round).

    python benchmarks/web_latency.py RUN [--images 40] [--rounds 3] [--heatmap-images 2]
    -> benchmarks/results/<hostname>-<simd>/web_latency.json

Needs `make web-deps`, chromium (.ci/install-report-tools.sh) and the [dev] extra (websockets).
Not run by the tests.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, percentiles, save

ROOT = Path(__file__).resolve().parents[1]


def _driver() -> Any:
    """tests/web/conftest.py: the one Chromium DevTools driver (Browser) and mdx serve wrapper (Server)."""
    spec = importlib.util.spec_from_file_location("mdx_web_driver", ROOT / "tests" / "web" / "conftest.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _python_ms(page: Path, threads: int, count: int, warmup: int) -> list[float]:
    import numpy as np

    from mdx.runtime.classifier import TfliteClassifier
    from mdx.runtime.images import load_image
    from mdx.runtime.preprocess import Preprocessing

    config = json.loads((page / "model_config.json").read_text())
    pre = Preprocessing(size=config["input"]["size"], mean=tuple(config["input"]["mean"]),
                        std=tuple(config["input"]["std"]))
    image = pre.normalize(load_image(page / "golden" / "0.png", pre.size)[None]).astype(np.float32)
    classifier = TfliteClassifier(page / "model.tflite", threads=threads)
    times = []
    for k in range(warmup + count):
        started = time.perf_counter()
        classifier.predict_raw(image)
        if k >= warmup:
            times.append((time.perf_counter() - started) * 1e3)
    return times


def _python_heatmap_ms(page: Path, threads: int, count: int) -> list[float]:
    """Wall time of runtime's occlusion map (mdx explain's sweep and batch) on the first `count` golden images."""
    from mdx.runtime.classifier import TfliteClassifier
    from mdx.runtime.explain import ExplainConfig, probability_fn
    from mdx.runtime.images import load_image
    from mdx.runtime.occlusion import occlusion_map
    from mdx.runtime.preprocess import Preprocessing

    config = json.loads((page / "model_config.json").read_text())
    pre = Preprocessing(size=config["input"]["size"], mean=tuple(config["input"]["mean"]),
                        std=tuple(config["input"]["std"]))
    classifier = TfliteClassifier(page / "model.tflite", threads=threads)
    predict = probability_fn(classifier.predict_raw, classifier)
    sweep = ExplainConfig().occlusion(pre.size, pre)
    predict(pre.normalize(load_image(page / "golden" / "0.png", pre.size)[None]))  # warm up, as the page has
    times = []
    for k in range(count):
        image = pre.normalize(load_image(page / "golden" / f"{k % _golden_count(page)}.png", pre.size))
        target = int(predict(image[None])[0].argmax())  # the page times its sweep after classifying, too
        started = time.perf_counter()
        occlusion_map(predict, image, target, sweep)
        times.append((time.perf_counter() - started) * 1e3)
    return times


def _golden_count(page: Path) -> int:
    return len(json.loads((page / "golden" / "golden.json").read_text())["images"])


def _browser_ms(driver: Any, chromium: str, page: Path, isolated: bool, count: int, warmup: int,
                heatmaps: int) -> tuple[list[float], list[float], str]:
    if isolated:
        server = driver.Server(page)
        origin, stop = server.origin, server.close
    else:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=str(page)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        origin = f"http://127.0.0.1:{httpd.server_address[1]}"

        def stop() -> None:
            httpd.shutdown()
            httpd.server_close()
    with tempfile.TemporaryDirectory() as profile:
        browser = driver.Browser(chromium, Path(profile))
        try:
            if browser.open(f"{origin}/index.html") != "ready":
                raise SystemExit(f"error: the page did not load: {browser.page()['errors']}")
            browser.evaluate("document.getElementById('heatmaps').checked = false")
            shown = browser.feed([page / "golden" / "0.png"] * (warmup + count), timeout=600)
            browser.evaluate("document.getElementById('heatmaps').checked = true")
            golden = [page / "golden" / f"{k % _golden_count(page)}.png" for k in range(heatmaps)]
            mapped = browser.feed(golden, timeout=600)
            heatmap_ms = [h["ms"] for h in browser.heatmaps()]
        finally:
            browser.close()
            stop()
    if mapped["errors"] or len(shown["results"]) != warmup + count or len(heatmap_ms) != heatmaps:
        raise SystemExit(f"error: the page showed {mapped['errors']}")
    return [r["ms"] for r in shown["results"][warmup:]], heatmap_ms, shown["facts"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder with convert/fp32 and convert/int8 (uint8 io)")
    parser.add_argument("--images", type=int, default=40, help="timed images per way and round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--heatmap-images", type=int, default=2, help="occlusion maps per way and round")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from mdx.export_web import LITERTJS, WebExportConfig, export_web

    driver = _driver()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None or not (ROOT / LITERTJS / "core").is_dir():
        raise SystemExit("error: needs chromium (.ci/install-report-tools.sh) and LiteRT.js (make web-deps)")
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    info = context()
    work = Path(tempfile.mkdtemp(prefix="web_latency_"))
    pages = {v: export_web(args.run, WebExportConfig(variant=v, out=work / v, litertjs=ROOT / LITERTJS)).out
             for v in ("fp32", "int8")}
    ways = ("python_1_thread", "python_2_threads", "browser_1_thread", "browser_threads")
    times: dict[str, dict[str, list[float]]] = {v: {w: [] for w in ways} for v in pages}
    maps: dict[str, dict[str, list[float]]] = {v: {w: [] for w in ways} for v in pages}
    facts: dict[str, str] = {}
    for _ in range(args.rounds):
        for variant, page in pages.items():
            for threads, way in ((1, "python_1_thread"), (2, "python_2_threads")):
                times[variant][way] += _python_ms(page, threads, args.images, args.warmup)
                maps[variant][way] += _python_heatmap_ms(page, threads, args.heatmap_images)
            for isolated, way in ((False, "browser_1_thread"), (True, "browser_threads")):
                ms, heatmap_ms, facts[way] = _browser_ms(driver, chromium, page, isolated, args.images, args.warmup,
                                                         args.heatmap_images)
                times[variant][way] += ms
                maps[variant][way] += heatmap_ms
    figures: dict[str, Any] = {}
    for variant, by_way in times.items():
        stats = {way: percentiles(ms) for way, ms in by_way.items()}
        heat = {way: percentiles(ms) for way, ms in maps[variant].items()}
        stats["heatmap"] = {**heat, **{
            f"browser_over_python_{n}_{key.removesuffix('_ms')}": round(heat[f"browser_{b}"][key] / heat[f"python_{p}"][key], 3)
            for n, b, p in (("1_thread", "1_thread", "1_thread"), ("threads", "threads", "2_threads"))
            for key in ("p50_ms", "min_ms")}}
        ratios = {}
        for key in ("p50_ms", "min_ms"):  # min: the least disturbed run, the steadier figure on a loaded machine
            at = {way: s[key] for way, s in stats.items() if way in ways}
            tag = key.removesuffix("_ms")
            ratios.update({f"browser_over_python_1_thread_{tag}": round(at["browser_1_thread"] / at["python_1_thread"], 3),
                           f"browser_over_python_threads_{tag}": round(at["browser_threads"] / at["python_2_threads"], 3),
                           f"browser_threads_speedup_{tag}": round(at["browser_1_thread"] / at["browser_threads"], 3)})
        figures[variant] = {**stats, **ratios}
    record = json.loads((pages["fp32"] / "record.json").read_text())
    payload = {**info, "figures": figures,
               "settings": {"run": str(args.run.resolve()), "images": args.images, "warmup": args.warmup,
                            "rounds": args.rounds, "heatmap_images": args.heatmap_images,
                            "occlusion": record["model_config"]["occlusion"], "input_size": record["model_config"]["input"]["size"],
                            "litertjs": record["litertjs_version"], "browser_facts": facts,
                            "cores": os.cpu_count(), "chromium": version},
               "median_of_rounds_note": "p50 over all rounds' images; rounds interleave python and browser"}
    print(json.dumps(figures, indent=1))
    print(save("web_latency", payload, args.out))


if __name__ == "__main__":
    main()
