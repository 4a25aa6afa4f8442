"""tf-keras' `load_model` against mdx's `mdx.train.keras_load.load_model`, side by side on one .keras file.

Every stage after training (convert, prune, explain, the benchmarks) starts by loading the run's
model.keras, once, in a process of its own. So each load here runs in a new Python process (TensorFlow
imported first, not timed), the two loaders alternating ABAB; each process prints a digest of the weights
it loaded, and a loader whose weights differ from tf-keras' fails the run.

    .venv/bin/python benchmarks/keras_load.py RUN/train/model.keras [--rounds 3] [--out FILE]
    -> benchmarks/results/<hostname>-<simd>/keras_load.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, save

CHILD = """
import hashlib, json, sys, time
from mdx.train.keras_shim import keras
from mdx.train.keras_load import load_model
path, loader = sys.argv[1], sys.argv[2]
started = time.perf_counter()
model = keras.models.load_model(path, compile=False) if loader == "tf_keras" else load_model(path)
seconds = time.perf_counter() - started
digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()
print(json.dumps({"seconds": seconds, "digest": digest, "weights": len(model.get_weights())}))
"""


def load_once(model: Path, loader: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(model), loader], capture_output=True, text=True,
                          check=False, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"error: the {loader} load of {model} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a .keras file, e.g. RUN/train/model.keras")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    facts = context()

    seconds: dict[str, list[float]] = {"tf_keras": [], "mdx": []}
    reference = None
    for _ in range(args.rounds):
        for loader, times in seconds.items():
            row = load_once(args.model, loader)
            reference = reference or row["digest"]
            if row["digest"] != reference:
                raise SystemExit(f"error: {loader} loaded other weights than tf-keras from {args.model}")
            times.append(float(row["seconds"]))
    median = {name: statistics.median(values) for name, values in seconds.items()}
    ratio = median["tf_keras"] / median["mdx"]
    print(f"{args.model} ({args.model.stat().st_size / 2**20:.1f} MB): tf-keras {median['tf_keras']:.2f} s, "
          f"mdx {median['mdx']:.2f} s a load, each in a new process (median of {args.rounds}): {ratio:.1f}x")
    payload = {**facts, "command": " ".join(["benchmarks/keras_load.py", *(argv or sys.argv[1:])]),
               "model": str(args.model), "bytes": args.model.stat().st_size, "weights_digest": reference,
               "figures": {"load seconds, median": {**median, "speed-up": ratio}}, "seconds": seconds}
    print(f"saved {save('keras_load', payload, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
