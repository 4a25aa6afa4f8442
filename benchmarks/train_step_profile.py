"""Where a training step's time goes: the tf.data pipeline alone, a frozen and a fine-tuning step in float32,
with XLA, and in bfloat16 mixed precision, on random pixels at one input size (ms a batch of 32).

    .venv/bin/python benchmarks/train_step_profile.py [--size 128] [--images 640] [--arms float32,xla,mixed_bfloat16]
    -> benchmarks/results/<hostname>-<simd>/train_step_profile_<size>px.json

bfloat16 runs Keras' `mixed_bfloat16` policy (bf16 compute, float32 weights): it pays only where the CPU
multiplies bf16 natively (AVX512-BF16, AMX); the file's `machine.cpu_flags` say whether it did.

The figures quoted under "train_speed" in benchmarks/README.md (the pipeline at 6% of a frozen step, a
fine-tuning step at 1.64x a frozen one, XLA 10x slower) came from one run at 128 px of this script's first
form (the same steps, plus an inference batch), under a load average of 7-15.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, save

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("float32", "xla", "mixed_bfloat16")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the images, arms interleaved")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    arms = args.arms.split(",")
    if not set(arms) <= set(ARMS):
        parser.error(f"--arms {args.arms!r}: expected some of {', '.join(ARMS)}")
    config, dataset = random_dataset(args.size, args.images)
    batches = int(np.ceil(args.images / 32))
    started = time.perf_counter()
    for _ in dataset:
        pass
    figures: dict = {"pipeline_ms_per_batch": round((time.perf_counter() - started) / batches * 1000, 1)}
    print(f"pipeline alone: {figures['pipeline_ms_per_batch']:.0f} ms/batch", flush=True)
    for phase in ("frozen", "fine-tuning"):
        models = {arm: _compiled(arm, phase == "fine-tuning", config) for arm in arms}
        for model in models.values():
            model.fit(dataset.take(3), verbose=0)  # trace and compile outside the timing
        times: dict[str, list[float]] = {arm: [] for arm in arms}
        for _ in range(args.rounds):  # interleaved, so that every arm sees the same load
            for arm, model in models.items():
                started = time.perf_counter()
                model.fit(dataset, verbose=0)
                times[arm].append((time.perf_counter() - started) / batches * 1000)
        step = {arm: round(float(np.median(values)), 1) for arm, values in times.items()}
        figures[phase] = {"ms_per_batch": step,
                          "speedup_vs_float32": {arm: round(step["float32"] / ms, 3) for arm, ms in step.items()}
                          if "float32" in step else None}
        for arm, ms in step.items():
            print(f"{phase} step ({arm}): {ms:.0f} ms/batch", flush=True)
    payload = context()
    payload["settings"] = {"size": args.size, "images": args.images, "batch_size": 32, "arms": arms,
                           "rounds": args.rounds, "statistic": "median over rounds of ms per batch"}
    payload["figures"] = figures
    print(f"saved {save(f'train_step_profile_{args.size}px', payload, args.out)}")
    return 0


def random_dataset(size: int, count: int):
    """(config, dataset): `count` random-pixel images at `size` px through the demo's augmentation, batches of 32."""
    from mdx.train.config import TrainConfig
    from mdx.train.model import preprocessing_for
    from mdx.train.pipeline_data import training_dataset

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, count)
    config = TrainConfig(input_size=size)
    return config, training_dataset(images, labels, 2, batch_size=32, preprocessing=preprocessing_for(config),
                                    augmentation=config.augmentation, seed=0)


def _compiled(arm: str, finetune: bool, config):
    """The demo's classifier compiled as `arm` runs it; the dtype policy applies to the layers built under it."""
    from mdx.train.keras_shim import keras
    from mdx.train.model import build_backbone, build_classifier, unfreeze_top_blocks

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if arm == "mixed_bfloat16" else "float32")
    try:
        keras.utils.set_random_seed(0)
        backbone, _ = build_backbone(config, ROOT / "data" / "chest_xray")
        backbone.trainable = False
        model = build_classifier(config, 2, backbone)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if finetune:
        unfreeze_top_blocks(backbone, config.finetune_blocks)
    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")]
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=metrics,
                  jit_compile=arm == "xla")
    return model


if __name__ == "__main__":
    raise SystemExit(main())
