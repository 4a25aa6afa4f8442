"""Where a training step's time goes: the tf.data pipeline alone, a frozen and a fine-tuning step, with and
without XLA, and an inference batch, on random pixels at one input size (prints ms a batch of 32).

    .venv/bin/python benchmarks/train_step_profile.py [--size 128] [--images 640]

The figures quoted under "train_speed" in benchmarks/README.md (the pipeline at 6% of a frozen step, a
fine-tuning step at 1.64x a frozen one, XLA 10x slower) came from one run at 128 px of this script's first
form (the same steps, plus an inference batch), under a load average of 7-15.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", type=int, default=640)
    args = parser.parse_args(argv)
    from mdx.train.config import TrainConfig
    from mdx.train.keras_shim import keras
    from mdx.train.model import build_backbone, build_classifier, preprocessing_for, unfreeze_top_blocks
    from mdx.train.pipeline_data import training_dataset

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, args.images)
    config = TrainConfig(input_size=args.size)
    dataset = training_dataset(images, labels, 2, batch_size=32, preprocessing=preprocessing_for(config),
                               augmentation=config.augmentation, seed=0)
    batches = int(np.ceil(args.images / 32))
    started = time.perf_counter()
    for _ in dataset:
        pass
    print(f"pipeline alone: {(time.perf_counter() - started) / batches * 1000:.0f} ms/batch", flush=True)
    for finetune in (False, True):
        for jit in (False, True):
            keras.utils.set_random_seed(0)
            backbone, _ = build_backbone(config, ROOT / "data" / "chest_xray")
            backbone.trainable = False
            model = build_classifier(config, 2, backbone)
            if finetune:
                unfreeze_top_blocks(backbone, config.finetune_blocks)
            metrics = [keras.metrics.CategoricalAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")]
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=metrics,
                          jit_compile=jit)
            model.fit(dataset.take(3), verbose=0)  # trace and compile outside the timing
            started = time.perf_counter()
            model.fit(dataset, verbose=0)
            step = (time.perf_counter() - started) / batches * 1000
            print(f"{'fine-tuning' if finetune else 'frozen'} step{' (XLA)' if jit else ''}: {step:.0f} ms/batch",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
