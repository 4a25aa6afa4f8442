"""How long a Keras epoch waits after its last batch, with tf.data's autotuner on (the path before) and
off (mdx's pipelines now), the two arms interleaved pass by pass in one process.

The autotuner runs a thread per iterator that sleeps for an optimization period doubling from 10 ms;
deleting the iterator, which every epoch and validation pass does, waits out the sleep. So an epoch's
wall time is its batches plus 0 to about half its length again. This script times every batch of each
pass through a callback and reports, per arm, the median step, the wait after the last batch and the
whole pass, on random pixels through the demo's augmentation and the fine-tuning classifier.

    .venv/bin/python benchmarks/epoch_end_stall.py [--size 128] [--images 640,4694] [--passes 6]
    -> benchmarks/results/<hostname>-<simd>/epoch_end_stall.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, save
from train_step_profile import _compiled, random_dataset


def _datasets(size: int, images: int) -> tuple[object, dict[str, object]]:
    """(config, {"autotune_on": dataset, "autotune_off": dataset}): the same batches, the switch set at build."""
    from mdx.train import pipeline_data

    default, arms = pipeline_data.TF_DATA_AUTOTUNE, {}
    try:
        for name, enabled in (("autotune_on", True), ("autotune_off", False)):
            pipeline_data.TF_DATA_AUTOTUNE = enabled
            config, arms[name] = random_dataset(size, images)
    finally:
        pipeline_data.TF_DATA_AUTOTUNE = default
    return config, arms


def _pass(model, dataset) -> dict[str, float]:
    """One epoch of `model.fit`: median ms a batch, ms from the last batch's end to fit's return, seconds."""
    from mdx.train.keras_shim import keras

    ends: list[float] = []

    class BatchEnds(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            ends.append(time.perf_counter())

        def on_train_batch_end(self, batch, logs=None):
            ends.append(time.perf_counter())

    started = time.perf_counter()
    model.fit(dataset, verbose=0, callbacks=[BatchEnds()])
    finished = time.perf_counter()
    return {"median_step_ms": round(float(np.median(np.diff(ends))) * 1000, 1),
            "after_last_batch_ms": round((finished - ends[-1]) * 1000, 1),
            "pass_s": round(finished - started, 2)}


def _summary(passes: list[dict[str, float]]) -> dict[str, float]:
    after = [p["after_last_batch_ms"] for p in passes]
    return {"median_step_ms": round(float(np.median([p["median_step_ms"] for p in passes])), 1),
            "after_last_batch_ms_median": round(float(np.median(after)), 1),
            "after_last_batch_ms_max": max(after),
            "stalled_passes": sum(a > 100 for a in after),
            "pass_s_mean": round(float(np.mean([p["pass_s"] for p in passes])), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", default="640,4694", help="comma-separated epoch lengths in images (4,694: the demo's)")
    parser.add_argument("--passes", type=int, default=6, help="epochs per arm, the arms alternating")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    figures = {}
    for images in (int(text) for text in args.images.split(",")):
        config, datasets = _datasets(args.size, images)
        model = _compiled("float32", True, config)
        model.fit(datasets["autotune_off"].take(3), verbose=0)  # trace and compile outside the timing
        passes: dict[str, list] = {name: [] for name in datasets}
        for index in range(args.passes):
            for name, dataset in datasets.items():
                passes[name].append(_pass(model, dataset))
                print(f"{images} images, pass {index + 1}, {name}: {passes[name][-1]}", flush=True)
        summary = {name: _summary(values) for name, values in passes.items()}
        summary["speedup_off_vs_on"] = round(summary["autotune_on"]["pass_s_mean"]
                                             / summary["autotune_off"]["pass_s_mean"], 3)
        figures[f"{images}_images"] = {"summary": summary, "passes": passes}
        print(f"{images} images: {summary}", flush=True)
    payload = context()
    payload["settings"] = {"size": args.size, "images": args.images, "batch_size": 32, "passes": args.passes,
                           "phase": "fine-tuning", "stalled": "more than 100 ms after the last batch"}
    payload["figures"] = figures
    print(f"saved {save('epoch_end_stall', payload, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
