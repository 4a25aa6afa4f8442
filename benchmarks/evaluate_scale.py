"""Peak memory and throughput of `mdx evaluate` against the number of images (issue 22).

Test folders of N images are the 624 chest X-ray test images (data/chest_xray/test) hardlinked over and
over (624, 6,240, 62,400). The model is any 224 x 224 two-output classifier: MobileNetV2 1.0 with
random weights, converted to full-integer int8 here (metrics are meaningless; memory and speed are
not). Each N runs `mdx evaluate` as a subprocess and reads its peak RSS from getrusage(RUSAGE_CHILDREN)
in a fresh helper process, so one run's peak does not hide the next. `--mdx` names more installs to
compare (e.g. the main worktree's .venv/bin/mdx): each is run on the same folders, side by side.

    python benchmarks/evaluate_scale.py --sizes 624,6240,62400 --threads 2 \\
        --mdx new=.venv/bin/mdx --mdx old=/path/to/old/.venv/bin/mdx
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, save

ROOT = Path(__file__).resolve().parents[1]
TEST = ROOT / "data" / "chest_xray" / "test"
CLASSES = ("NORMAL", "PNEUMONIA")

# Runs one command and prints its peak RSS (KiB on Linux) and wall seconds: RUSAGE_CHILDREN of this helper
# holds only that command.
_MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(json.dumps({"rc": code, "seconds": time.perf_counter() - started,
                  "peak_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def make_model(path: Path) -> None:
    """Random-init MobileNetV2 1.0 224 px, 2 softmax outputs, full-integer int8, resizable batch."""
    import numpy as np
    import tensorflow as tf

    keras_model = tf.keras.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None, classes=2)
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(8):
            yield [rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())


def make_folder(root: Path, n: int) -> Path:
    """N images: the test images hardlinked round-robin per class until N are reached."""
    sources = [(c, p) for c in CLASSES for p in sorted((TEST / c).iterdir()) if p.is_file()]
    for c in CLASSES:
        (root / c).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cls, source = sources[i % len(sources)]
        target = root / cls / f"{i // len(sources):04d}_{source.name}"
        try:
            os.link(source, target)
        except OSError:
            target.symlink_to(source)
    return root


def measure(mdx: str, model: Path, folder: Path, threads: int, n_boot: int, out: Path) -> dict:
    command = [mdx, "evaluate", str(model), str(folder), "--size", "224", "--mean", "127.5", "--std", "127.5",
               "--labels", ",".join(CLASSES), "--threads", str(threads), "--n-boot", str(n_boot), "--json", str(out)]
    line = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, check=True)
    facts = json.loads(line.stdout.strip().splitlines()[-1])
    if facts["rc"] != 0:
        raise SystemExit(f"error: {' '.join(command)} exited {facts['rc']}")
    evaluation = json.loads(out.read_text())
    n = evaluation["metrics"]["n"]
    return {"n": n, "peak_rss_mb": round(facts["peak_rss_kib"] / 1024, 1), "wall_seconds": round(facts["seconds"], 2),
            "images_per_second": round(n / facts["seconds"], 1),
            "accuracy": evaluation["metrics"]["accuracy"]["value"],
            "inference_seconds": evaluation["inference_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="624,6240,62400")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--mdx", action="append", default=[], help="NAME=PATH of an mdx executable (repeatable)")
    parser.add_argument("--model", type=Path, default=None, help="a 224 px 2-output .tflite (default: made here)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    installs = dict(item.split("=", 1) for item in args.mdx) or {"new": str(Path(sys.executable).parent / "mdx")}
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="evaluate_scale.") as tmp:
        work = Path(tmp)
        model = args.model or work / "mobilenet_v2_random_int8.tflite"
        if args.model is None:
            make_model(model)
        for n in sizes:
            folder = make_folder(work / f"n{n}", n)
            for name, mdx in installs.items():
                row = {"install": name, **measure(mdx, model, folder, args.threads, args.n_boot, work / f"{name}{n}.json")}
                print(json.dumps(row), flush=True)
                rows.append(row)
    figures = {}
    for name in installs:
        mine = [r for r in rows if r["install"] == name]
        figures[name] = {"peak_rss_mb": {r["n"]: r["peak_rss_mb"] for r in mine},
                         "images_per_second": {r["n"]: r["images_per_second"] for r in mine},
                         "rss_ratio_largest_to_smallest": round(mine[-1]["peak_rss_mb"] / mine[0]["peak_rss_mb"], 3)}
    settings = {"sizes": sizes, "threads": args.threads, "n_boot": args.n_boot, "installs": installs,
                "model": "MobileNetV2 1.0 224 px, random init (seed of Keras), 2 softmax outputs, int8 in/out"
                if args.model is None else str(args.model), "data": "data/chest_xray/test hardlinked to N"}
    path = save("evaluate_scale", {"figures": figures, "rows": rows, "settings": settings, **context()}, args.out)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
