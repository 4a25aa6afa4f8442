"""`mdx export web`: one converted variant as a static page that classifies images in the browser.

The folder holds index.html, app.js and occlusion.js (from mdx/web/), the LiteRT.js runtime copied from the npm
package pinned by web/package-lock.json (`npm ci --prefix web`; nothing is fetched when the page
runs), model.tflite, model_config.json (the contract of `mdx export android`, built by
mdx/model_contract.py, plus the occlusion sweep the page's heatmap runs), sample.png, golden/ (the golden images at the model's size as PNG with the
harness's probabilities and decisions) and record.json naming every copied file with its sha256.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from mdx.config import ConfigBase
from mdx.errors import ArtifactError
from mdx.model_contract import CONFIG_NAME, MODEL_NAME, SAMPLE_NAME, check_export_options, png_bytes, prepare
from mdx.records import RECORD_NAME, staged_dir, write_record
from mdx.runtime.explain import ExplainConfig
from mdx.runtime.files import atomic_write_bytes, atomic_write_json, atomic_write_text, file_facts
from mdx.runtime.preprocess import Preprocessing
from mdx.variants import Quantization
from mdx.web_model import fix_batch

# LiteRT.js 2.5.3 maps float32, int32 and uint8 tensors only: an int8-io model does not load.
WEB_DTYPES = ("float32", "uint8")
LITERTJS = Path("web/node_modules/@litertjs")  # relative to the checkout, where `npm ci --prefix web` puts it
# package file -> where the page loads it; the jspi build is left out (the page never asks for JSPI)
RUNTIME_FILES = {
    "core/dist/index.js": "litert/core/index.js",
    "core/dist/index.js.map": "litert/core/index.js.map",
    "wasm-utils/dist/index.js": "litert/wasm-utils/index.js",
    "wasm-utils/dist/index.js.map": "litert/wasm-utils/index.js.map",
    **{f"core/wasm/litert_wasm_{kind}internal.{ext}": f"litert/wasm/litert_wasm_{kind}internal.{ext}"
       for kind in ("", "compat_", "threaded_") for ext in ("js", "wasm")},
}
IMPORT_MAP = {"imports": {"@litertjs/wasm-utils": "./litert/wasm-utils/index.js"}}
GOLDEN_DIR = "golden"
PAGE_FILES = ("app.js", "occlusion.js")  # copied from mdx/web/ as they are; index.html is filled in
Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class WebExportConfig(ConfigBase):
    """Which variant to export, where, from which LiteRT.js install, with how many golden images, and
    the page's occlusion sweep: None is `mdx explain`'s default (runtime's ExplainConfig: a patch of a
    seventh of the input side, a stride of one patch, the preprocessing mean as fill)."""

    variant: Quantization = Quantization.INT8
    out: Path = Path("web_export")
    litertjs: Path = LITERTJS
    golden_count: int = 4
    overwrite: bool = False
    patch: int | None = None
    stride: int | None = None
    fill: float | None = None  # a pixel value 0..255, as mdx explain's --fill

    def __post_init__(self) -> None:
        check_export_options(self)
        self.explain()  # a bad patch, stride or fill fails before any work
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "litertjs", Path(self.litertjs))

    def explain(self) -> ExplainConfig:
        return ExplainConfig(patch=self.patch, stride=self.stride, fill=self.fill)


@dataclasses.dataclass(frozen=True)
class WebExportResult:
    """Where the page went and what it holds."""

    out: Path
    variant: Quantization
    model_bytes: int
    golden_count: int
    litertjs_version: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "variant": self.variant.value, "model_bytes": self.model_bytes,
                "golden_count": self.golden_count, "litertjs_version": self.litertjs_version,
                "seconds": round(self.seconds, 2)}


def _litertjs_version(root: Path) -> str:
    """The installed @litertjs/core version, after checking every file the page needs is there.

    Raises:
        ArtifactError: the npm packages are not installed at `root`.
    """
    missing = [name for name in RUNTIME_FILES if not (root / name).is_file()]
    if missing:
        raise ArtifactError(f"{root / missing[0]} not found: install LiteRT.js with `npm ci --prefix web` "
                            "(or `make web-deps`) in the mdx checkout, or pass --litertjs DIR/node_modules/@litertjs")
    return str(json.loads((root / "core/package.json").read_text(encoding="utf-8"))["version"])


def _index_html() -> str:
    """index.html with the import map inlined and its hash in the Content-Security-Policy."""
    template = resources.files("mdx.web").joinpath("index.html").read_text(encoding="utf-8")
    import_map = json.dumps(IMPORT_MAP)
    digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    return template.replace("__IMPORTMAP_HASH__", f"sha256-{digest}").replace("__IMPORTMAP__", import_map)


def occlusion_settings(config: WebExportConfig, preprocessing: Preprocessing) -> dict[str, Any]:
    """The sweep `mdx explain` would run with these options, for model_config.json's "occlusion".

    The fill is in model-input units, one value per channel; the page follows the decided class.

    Raises:
        UsageError: the patch is larger than the model's input.
    """
    sweep = config.explain().occlusion(preprocessing.size, preprocessing)
    sweep.check_fits(preprocessing.size, preprocessing.size)
    fill = sweep.fill if isinstance(sweep.fill, tuple) else (sweep.fill,) * 3
    return {"patch": sweep.patch, "stride": sweep.stride, "fill": [float(v) for v in fill],
            "target": "decided class", "algorithm": "runtime/occlusion.py occlusion_map (docs/explain.md)"}


def _golden(contract: Any, out: Path) -> list[Path]:
    """golden/<k>.png at the model's size and golden.json with the harness's results for each."""
    golden, written = contract.golden, []
    images = []
    for k, source in enumerate(golden.sources):
        name = f"{k}.png"
        written.append(atomic_write_bytes(out / name, png_bytes(golden.pixels[k])))
        tensor = golden.inputs[k]
        images.append({"file": name, "source": source, "label": int(golden.labels[k]),
                       # the exact tensor the harness fed the model (little-endian), for a bit-exact check
                       "input_sha256": hashlib.sha256(tensor.astype(tensor.dtype.newbyteorder("<")).tobytes()).hexdigest(),
                       "probabilities": [float(v) for v in golden.probabilities[k]],
                       "class_index": int(golden.classes[k])})
    index = {"model_sha256": contract.config["model"]["sha256"], "input_dtype": contract.input_dtype,
             "output_dtype": contract.output_dtype, "output_kind": golden.output_kind, "images": images}
    written.append(atomic_write_json(out / "golden.json", index))
    return written


def _write_model(contract: Any, path: Path) -> Path:
    """The batch-1 model (mdx/web_model.py), checked against the harness's golden outputs; the config
    and golden index are pointed at it (they are written after this).

    Raises:
        ArtifactError: the rewritten model's outputs differ from the converted model's.
    """
    import numpy as np

    from mdx.runtime.classifier import TfliteClassifier
    from mdx.runtime.files import sha256_file

    data, _ = fix_batch(contract.model.read_bytes())
    atomic_write_bytes(path, data)
    golden = contract.golden
    raw = TfliteClassifier(path, threads=1).predict_raw(contract.variant.preprocessing.normalize(golden.pixels))
    if not np.array_equal(raw, golden.outputs_float):
        raise ArtifactError(f"{contract.model} gives other outputs once its batch is fixed at 1 "
                            f"(max difference {float(np.abs(raw - golden.outputs_float).max()):.3g}); report this model")
    sha = sha256_file(path)
    contract.config["model"] = {**contract.config["model"], "sha256": sha, "bytes": path.stat().st_size,
                                "converted_sha256": contract.model_sha256}
    return path


def export_web(run: Path, config: WebExportConfig, *, on_log: Log | None = None) -> WebExportResult:
    """Write `run`'s converted variant as a static page folder `config.out`.

    Args:
        run: a run folder with convert/<variant>/ (from mdx convert) and train/record.json.
        config: variant, output folder, LiteRT.js package folder, golden image count, overwrite.
        on_log: called with one summary line.

    Raises:
        ArtifactError: LiteRT.js is not installed, the run lacks the variant, its records disagree
            with the model, its tensors are int8 (LiteRT.js reads float32 and uint8), or `out`
            exists without overwrite.
        DataError: the test images named by the training record are missing or too few.
    """
    started = time.perf_counter()
    run = Path(run)
    version = _litertjs_version(config.litertjs)
    contract = prepare(run, config.variant, config.golden_count, dtypes=WEB_DTYPES,
                       consumer=f"LiteRT.js {version} reads float32 and uint8 tensors only: reconvert with "
                                f"`mdx convert {run} --int8 --overwrite` (float32 io, the default) or with "
                                "--io uint8, or export fp32")
    contract.config["occlusion"] = occlusion_settings(config, contract.variant.preprocessing)
    with staged_dir(config.out, overwrite=config.overwrite) as out:
        page = [atomic_write_text(out / "index.html", _index_html()),
                *(atomic_write_bytes(out / name, resources.files("mdx.web").joinpath(name).read_bytes())
                  for name in PAGE_FILES),
                _write_model(contract, out / MODEL_NAME),
                atomic_write_json(out / CONFIG_NAME, contract.config),
                atomic_write_bytes(out / SAMPLE_NAME, png_bytes(contract.golden.pixels[0]))]
        runtime = []
        for source, target in RUNTIME_FILES.items():
            (out / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(config.litertjs / source, out / target)
            runtime.append({**file_facts(out / target), "path": target, "package_file": f"@litertjs/{source}"})
        (out / GOLDEN_DIR).mkdir()
        golden = _golden(contract, out / GOLDEN_DIR)
        write_record(
            out, stage="export-web", config=config.to_dict(),
            inputs=[contract.model, contract.variant.folder / RECORD_NAME, contract.train_record,
                    config.litertjs / "core/package.json", *(p for p, _ in contract.images)],
            outputs=[*page, *golden], wall_seconds=time.perf_counter() - started,
            extra={"variant": config.variant.value, "run": str(run.resolve()), "litertjs_version": version,
                   "runtime_files": runtime, "model_config": contract.config},
        )
    seconds = time.perf_counter() - started
    if on_log is not None:
        size = contract.model_bytes
        shown = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} KB"
        on_log(f"web: exported {config.variant} {MODEL_NAME} ({shown}), LiteRT.js {version} and "
               f"{len(contract.images)} golden images to {config.out} in {seconds:.1f} s")
    return WebExportResult(config.out, config.variant, contract.model_bytes, len(contract.images), version, seconds)
