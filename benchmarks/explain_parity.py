"""Occlusion maps of every variant against FP32's, and the cost of one map (issue 20).

Parity: for each variant of a `mdx pipeline` run (fp16, dynamic, int8, int8-fallback under convert/) and
the fp32 .tflite of a pruned and a clustered model (`mdx prune` folders), `mdx check` against the run's
FP32 with explanation parity on a sample of the test split: Spearman and top-10% IoU of the maps, and
the border share of each. Both models are decided at 0.5, as benchmarks/demo_record.py checks them.

Cost: one 224 px image with an int8 MobileNetV2 on 1 thread, default sweep (7 x 7 patches) and a
stride of half a patch (13 x 13), side by side with single invokes of the same interpreter in the same
run, so the ratio holds on a loaded machine where the absolute time does not.

    make demo   (or mdx pipeline data/chest_xray --out runs/demo --input-size 128 --variants fp16,dynamic,int8,int8-fallback)
    mdx prune runs/demo --sparsity 0.5 --epochs 1 --out runs/demo/prune-0.5
    mdx prune runs/demo/prune-0.5 --sparsity 0.5 --epochs 1 --clusters 16 --out runs/demo/prune-0.5-c16
    .venv/bin/python benchmarks/explain_parity.py runs/demo --pruned runs/demo/prune-0.5 --clustered runs/demo/prune-0.5-c16
    -> benchmarks/results/<hostname>-<simd>/explain_parity.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, run_files, save

COST_MODEL = Path("/work/shared/data/imagenet_mobilenet_v2/tf2_mobilenet_v2_1.0_224_ptq.tflite")
COST_IMAGE = COST_MODEL.parent / "cat.bmp"
QUANTIZED = ("fp16", "dynamic", "int8", "int8-fallback")


def _pruned_tflite(folder: Path) -> Path:
    """The fp32 .tflite of a `mdx prune` folder's model.keras (written once, beside it)."""
    target = folder / "tflite" / "fp32" / "model.tflite"
    if not target.is_file():
        from mdx.convert.sparse import tflite_bytes
        from mdx.train.keras_load import load_model

        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(tflite_bytes(load_model(folder / "model.keras")))
    return target


def parity(run: Path, candidates: dict[str, Path], sample: int, record: dict[str, Any]) -> dict[str, Any]:
    from mdx.runtime.check import check
    from mdx.runtime.evaluate import EvaluateConfig
    from mdx.runtime.explain_parity import ExplanationCheck
    from mdx.runtime.parity import Tolerances

    fp32 = run / "convert" / "fp32" / "model.tflite"
    test_dir = Path(record["data"]["test_dir"])
    p = record["preprocessing"]
    config = EvaluateConfig(threshold=0.5, n_boot=0, labels=tuple(record["labels"]), size=p["size"],
                            mean=tuple(p["mean"]), std=tuple(p["std"]))
    rows = {}
    for name, model in candidates.items():
        started = time.perf_counter()
        result = check(model, fp32, test_dir, config, Tolerances(min_agreement=0.0, max_acc_drop_pt=100, max_auc_drop=1),
                       explanations=ExplanationCheck(sample=sample))
        explanation = result.to_dict()["explanation"]
        rows[name] = {"model": str(model), "agreement": round(result.parity.agreement, 4), "n_test": result.parity.n,
                      "spearman": explanation["spearman"], "top10_iou": explanation["top10_iou"],
                      "border_share": explanation["border_share"], "occlusion": explanation["occlusion"],
                      "seconds": round(time.perf_counter() - started, 1)}
        print(f"{name}: Spearman mean {explanation['spearman']['mean']:.3f} (min {explanation['spearman']['min']:.3f}), "
              f"IoU mean {explanation['top10_iou']['mean']:.3f}, border share {explanation['border_share']['candidate']} "
              f"vs fp32 {explanation['border_share']['reference']}", flush=True)
    return rows


def gradcam_vs_occlusion(run: Path, record: dict[str, Any], sample: int) -> dict[str, Any]:
    """Grad-CAM of the Keras model against occlusion of its FP32 .tflite, on `sample` evenly spaced test images,
    compared as the pipeline's explain stage compares them (mdx.explain_keras.compare_with_occlusion)."""
    import numpy as np
    from common import load_test_split

    from mdx.explain_keras import compare_with_occlusion
    from mdx.runtime.classifier import TfliteClassifier
    from mdx.runtime.explain import probability_fn
    from mdx.runtime.occlusion import default_occlusion, occlusion_map

    inputs, labels, _ = load_test_split({"record": record, "train": run / "train"}, limit=sample)
    classifier = TfliteClassifier(run / "convert" / "fp32" / "model.tflite")
    predict = probability_fn(classifier.predict_raw, classifier)
    targets = (predict(inputs)[:, 1] >= 0.5).astype(int)
    occlusion = default_occlusion(inputs.shape[1])
    maps = np.stack([occlusion_map(predict, image, int(target), occlusion)[0] for image, target in zip(inputs, targets)])
    _, figures = compare_with_occlusion(run / "train" / "model.keras", inputs, [int(t) for t in targets], maps,
                                        [f"test#{i}" for i in range(len(inputs))], [int(v) for v in labels],
                                        record["labels"])
    print(f"grad-cam vs occlusion (fp32): { {k: v for k, v in figures.items() if k != 'images'} }", flush=True)
    return figures


def cost(repeats: int) -> dict[str, Any]:
    """Seconds for one map (default sweep and half-patch stride) and ms per single invoke, interleaved."""
    from mdx.runtime.classifier import TfliteClassifier
    from mdx.runtime.explain import probability_fn
    from mdx.runtime.images import load_image
    from mdx.runtime.occlusion import Occlusion, default_occlusion, occlusion_map
    from mdx.runtime.preprocess import MOBILENET_V2

    classifier = TfliteClassifier(COST_MODEL, threads=1)
    predict = probability_fn(classifier.predict_raw, classifier)
    image = MOBILENET_V2.normalize(load_image(COST_IMAGE, 224))
    target = int(predict(image[None])[0].argmax())
    sweeps = {"default": default_occlusion(224), "half_stride": Occlusion(patch=32, stride=16)}
    seconds: dict[str, list[float]] = {name: [] for name in sweeps}
    invoke_ms: list[float] = []
    for _ in range(repeats):
        for _ in range(20):
            started = time.perf_counter()
            predict(image[None])
            invoke_ms.append((time.perf_counter() - started) * 1000)
        for name, occlusion in sweeps.items():
            started = time.perf_counter()
            occlusion_map(predict, image, target, occlusion)
            seconds[name].append(time.perf_counter() - started)
    per_invoke = statistics.median(invoke_ms)
    figures: dict[str, Any] = {"model": str(COST_MODEL), "image": COST_IMAGE.name, "threads": 1,
                               "batching": classifier.describe()["batching"], "invoke_ms_median": round(per_invoke, 2)}
    for name, occlusion in sweeps.items():
        side = len(range(0, 224 - occlusion.patch + 1, occlusion.stride))
        invokes = side * side + 1
        median = statistics.median(seconds[name])
        figures[name] = {"patch": occlusion.patch, "stride": occlusion.stride, "invokes": invokes,
                         "seconds_median": round(median, 3), "seconds_all": [round(s, 3) for s in seconds[name]],
                         "x_single_invoke": round(median * 1000 / per_invoke, 1)}
        print(f"cost {name}: {invokes} invokes, {median:.3f} s = {median * 1000 / per_invoke:.1f} x one invoke "
              f"({per_invoke:.1f} ms)", flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?", default=Path("runs/demo"))
    parser.add_argument("--pruned", type=Path, help="a `mdx prune` folder of the run")
    parser.add_argument("--clustered", type=Path, help="a `mdx prune --clusters` folder")
    parser.add_argument("--sample", type=int, default=32, help="test images explained per variant (spread over classes)")
    parser.add_argument("--repeats", type=int, default=3, help="cost: interleaved repeats")
    parser.add_argument("--variants", default=",".join(QUANTIZED), help="convert/ variants to compare (comma-separated)")
    parser.add_argument("--no-cost", action="store_true", help="skip the cost measurement")
    parser.add_argument("--no-gradcam", action="store_true", help="skip Grad-CAM against occlusion")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    facts = context()
    files = run_files(args.run)
    candidates = {name: args.run / "convert" / name / "model.tflite" for name in args.variants.split(",")
                  if name and (args.run / "convert" / name / "model.tflite").is_file()}
    for name, folder in (("pruned", args.pruned), ("clustered", args.clustered)):
        if folder is not None:
            candidates[name] = _pruned_tflite(folder)
    payload = {
        "command": "python benchmarks/explain_parity.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        **facts,
        "figures": {"parity_vs_fp32": parity(args.run, candidates, args.sample, files["record"])},
        "settings": {"sample": args.sample, "decided_at": 0.5, "sweep": "docs/explain.md defaults"},
    }
    if not args.no_gradcam:
        payload["figures"]["gradcam_vs_occlusion_fp32"] = gradcam_vs_occlusion(args.run, files["record"], args.sample)
    if not args.no_cost:
        payload["figures"]["cost_224px_int8"] = cost(args.repeats)
    print(f"saved {save('explain_parity', payload, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
