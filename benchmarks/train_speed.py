"""Training speed, lever by lever, old path against new in one run: epoch throughput and the accuracy kept.

Throughput: the default recipe (2 frozen + 3 fine-tuning epochs, every epoch run) on a capped subset,
each lever's arm right after the other so that both see the same load, at 128 px on the chest X-rays
and 224 px on the brain MRI. Accuracy: the default recipe on the whole chest X-ray set at 128 px (the
demo's training), old frozen phase against new, with test accuracy and AUC and their bootstrap CIs.

    .venv/bin/python benchmarks/train_speed.py [--chest DIR] [--mri DIR] [--per-class N] [--mri-per-class N]
        [--accuracy-per-class N] [--seeds 0,1,2] [--levers old,untuned_tf_data,finetune_2,mixed_bfloat16] [--skip-accuracy] [--skip-throughput] [--out FILE]
    -> benchmarks/results/<hostname>-<simd>/train_speed.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import accuracy_auc, context, save

ROOT = Path(__file__).resolve().parent.parent
# each lever is one change to OLD, the path before any of them: the frozen phase of old records
# (frozen_features false) and tf.data's autotuner on (tf_data_autotune, mdx.train.pipeline_data's switch);
# finetune_2: 2 fine-tuning epochs where the step budget gives more (5 on the demo's 4,694 X-rays);
# finetune_2_lr_2.5x: the same at 2.5 times the learning rate, so that lr x epochs matches the 5 epochs' at 1e-4
# mixed_bfloat16: the old path under Keras' dtype policy (bf16 compute, float32 weights).
# "policy" and "tf_data_autotune" are not TrainConfig keys: they are taken out before the rest becomes one
OLD = {"frozen_features": False, "tf_data_autotune": True}
CHANGES = {"old": {}, "frozen_features": {"frozen_features": True},
           "untuned_tf_data": {"tf_data_autotune": False},
           "finetune_2": {"epochs_finetune": 2},
           "finetune_2_lr_2.5x": {"epochs_finetune": 2, "lr_finetune": 2.5e-4},
           "mixed_bfloat16": {"policy": "mixed_bfloat16"}}
LEVERS = {name: {**OLD, **change} for name, change in CHANGES.items()}
DEFAULT_LEVERS = ("old", "frozen_features")
# bfloat16 pays only with native bf16 arithmetic; without it TF emulates bf16 and trains slower
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _timed_train(data: Path, settings: dict[str, Any], out: Path) -> dict[str, Any]:
    """Train once (under the Keras dtype policy `settings["policy"]`, float32 by default); the seconds from
    the model's build to the last epoch, read off the log's timestamps."""
    from mdx.train import pipeline_data
    from mdx.train.config import TrainConfig
    from mdx.train.fit import train
    from mdx.train.keras_shim import keras

    stamps: list[tuple[float, str]] = []
    settings = dict(settings)
    policy = settings.pop("policy", "float32")
    autotune = settings.pop("tf_data_autotune", pipeline_data.TF_DATA_AUTOTUNE)
    config = TrainConfig.from_dict(settings)
    keras.mixed_precision.set_global_policy(policy)
    default_autotune, pipeline_data.TF_DATA_AUTOTUNE = pipeline_data.TF_DATA_AUTOTUNE, autotune
    try:
        result = train(data, config, out, overwrite=True, log=lambda line: stamps.append((time.perf_counter(), line)))
    finally:
        keras.mixed_precision.set_global_policy("float32")
        pipeline_data.TF_DATA_AUTOTUNE = default_autotune
    start = next(t for t, line in stamps if line.startswith("train: ") and " train / " in line)
    epochs = [t for t, line in stamps if line.startswith("epoch ")]
    record = json.loads((out / "record.json").read_text(encoding="utf-8"))
    n_train = record["data"]["counts"]["train"]
    seconds = epochs[-1] - start
    return {"train_images": n_train, "epochs": len(epochs), "epoch_seconds": round(seconds, 2),
            "images_per_second": round(n_train * len(epochs) / seconds, 2),
            "wall_seconds": round(result.wall_seconds, 1),
            "metrics": {split: accuracy_auc(result.metrics[split]) for split in ("validation", "test")
                        if split in result.metrics}}



def _throughput(data: Path, size: int, per_class: int, work: Path, levers: dict[str, dict]) -> dict[str, Any]:
    """Each lever's epoch throughput on `per_class` images a class, every epoch of the default recipe run."""
    base = {"input_size": size, "max_images_per_class": per_class, "patience": 0, "bootstrap": 0}
    arms = {}
    for name, lever in levers.items():
        arms[name] = _timed_train(data, {**base, **lever}, work / f"{size}-{name}")
        print(f"{size} px {name}: {arms[name]['images_per_second']} images/s", flush=True)
    old = arms["old"]["images_per_second"]
    return {"data": str(data), "input_size": size, "max_images_per_class": per_class, "arms": arms,
            "speedup_vs_old": {name: round(arm["images_per_second"] / old, 3) for name, arm in arms.items()}}


def _seed_list(text: str) -> list[int]:
    """--seeds 0,1,2 -> [0, 1, 2]; anything else is argparse's one-line usage error."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, e.g. 0,1,2") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chest", type=Path, default=ROOT / "data" / "chest_xray", help="the demo's chest X-rays")
    parser.add_argument("--mri", type=Path, default=ROOT.parent / "shared" / "data" / "brain_tumor_mri")
    parser.add_argument("--per-class", type=int, default=150, help="images a class for the 128 px throughput arms")
    parser.add_argument("--mri-per-class", type=int, default=150, help="images a class for the 224 px throughput arms")
    parser.add_argument("--accuracy-per-class", type=int, default=0,
                        help="images a class for the accuracy arms (0: all, the demo's training)")
    parser.add_argument("--seeds", type=_seed_list, default=[0], help="comma-separated training seeds for the accuracy arms")
    parser.add_argument("--levers", type=lambda text: text.split(","), default=list(DEFAULT_LEVERS),
                        help=f"comma-separated arms, old first, of {', '.join(LEVERS)} (default: {','.join(DEFAULT_LEVERS)})")
    parser.add_argument("--skip-throughput", action="store_true", help="only the accuracy arms")
    parser.add_argument("--skip-accuracy", action="store_true", help="only the throughput arms")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    unknown = [name for name in args.levers if name not in LEVERS]
    if unknown or "old" not in args.levers:
        parser.error(f"--levers {','.join(args.levers)}: expected old and some of {', '.join(LEVERS)}")
    levers = {name: LEVERS[name] for name in args.levers}
    from mdx.runtime.machine import cpu_flags

    payload = context()
    flags = cpu_flags()
    payload["settings"] = {"levers": levers, "per_class": args.per_class, "mri_per_class": args.mri_per_class,
                           "accuracy_per_class": args.accuracy_per_class, "seeds": args.seeds,
                           "recipe": "TrainConfig() defaults"}
    native_bf16 = any(f in flags for f in BF16_FLAGS)
    if "mixed_bfloat16" in levers and not native_bf16:
        parser.error("--levers mixed_bfloat16: this CPU has none of " + ", ".join(BF16_FLAGS) + ", so TF would emulate "
                     "bf16 and train slower; drop it from --levers")
    payload["not_run"] = {
        "bfloat16": "skipped: the CPU has none of " + ", ".join(BF16_FLAGS) if not native_bf16
        else "measured as the mixed_bfloat16 lever" if "mixed_bfloat16" in levers
        else "not in --levers (see benchmarks/README.md: mixed_bfloat16)",
        "xla": "measured by hand (jit_compile=True on compile): 9.7x slower per frozen step and 11x per fine-tuning "
               "step at 128 px on vm-avx2, so not a lever; see benchmarks/README.md",
    }
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="train_speed-") as tmp:
        work = Path(tmp)
        if not args.skip_throughput:
            figures["throughput_128px_chest_xray"] = _throughput(args.chest, 128, args.per_class, work, levers)
        if args.mri.is_dir() and not args.skip_throughput:
            figures["throughput_224px_brain_mri"] = _throughput(args.mri, 224, args.mri_per_class, work, levers)
        # seed 0 keeps the key of earlier records; other seeds get their own
        for seed in ([] if args.skip_accuracy else args.seeds):
            key = "accuracy_128px_chest_xray" + (f"_seed{seed}" if seed else "")
            figures[key] = {
                name: _timed_train(args.chest, {"input_size": 128, "max_images_per_class": args.accuracy_per_class,
                                                "seed": seed, **lever}, work / f"full-{name}-{seed}")
                for name, lever in levers.items()}
    payload["figures"] = figures
    path = save("train_speed", payload, args.out)
    print(json.dumps(figures, indent=1))
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
