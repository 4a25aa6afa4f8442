"""TensorFlow's inter-op thread pool during training: TF's default (one thread per core) against one per
socket (Intel's recommendation for oneDNN), the demo's training, one arm a process, arms alternated.

TF reads its thread-pool sizes once, when its runtime starts, so each arm is its own `mdx train` process
with TF_NUM_INTEROP_THREADS set or unset; the arms alternate (A B A B ...) so that both see the same load.
Epoch seconds are the sum of the epoch times `mdx train` prints; accuracy and AUC (with their bootstrap
CIs) come from each run's metrics.json.

    .venv/bin/python benchmarks/train_threads.py [DATA] [--rounds 2] [--input-size 128] [--out FILE] [-- TRAIN FLAGS]
    -> benchmarks/results/<hostname>-<simd>/train_threads.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import accuracy_auc, context, save

ROOT = Path(__file__).resolve().parent.parent
EPOCH = re.compile(r"^epoch \d+/\d+ .*\((\d+(?:\.\d+)?) s\)$")
# TF_NUM_INTEROP_THREADS per arm; "0" is TF's own default
ARMS = {"tf_default": "0", "one_per_socket": "1"}


def _run(data: Path, out: Path, interop: str, size: int, extra: list[str]) -> dict[str, Any]:
    env = {**os.environ, "TF_NUM_INTEROP_THREADS": interop}
    command = [str(ROOT / ".venv" / "bin" / "mdx"), "train", str(data), "--out", str(out), "--overwrite",
               "--input-size", str(size), *extra]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    epochs = [float(m.group(1)) for line in (done.stdout + done.stderr).splitlines() if (m := EPOCH.match(line.strip()))]
    record = json.loads((out / "train" / "record.json").read_text(encoding="utf-8"))
    metrics = json.loads((out / "train" / "metrics.json").read_text(encoding="utf-8"))
    n = record["data"]["counts"]["train"]
    return {"epochs": len(epochs), "epoch_seconds": round(sum(epochs), 1),
            "images_per_second": round(n * len(epochs) / sum(epochs), 2), "wall_seconds": round(wall, 1),
            "metrics": {split: accuracy_auc(metrics[split]) for split in ("validation", "test") if split in metrics}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="?", default=ROOT / "data" / "chest_xray")
    parser.add_argument("--rounds", type=int, default=2, help="A B pairs")
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument("--out", type=Path, default=None)
    argv = list(sys.argv[1:] if argv is None else argv)
    # after --: more `mdx train` flags, the same for every arm
    train_flags = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    args.train_flags = train_flags
    arms = args.arms.split(",")
    if not set(arms) <= set(ARMS):
        parser.error(f"--arms {args.arms!r}: expected some of {', '.join(ARMS)}")
    payload = context()
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory(prefix="train_threads-") as tmp:
        for round_index in range(args.rounds):
            for arm in arms:
                result = _run(args.data, Path(tmp) / f"{arm}-{round_index}", ARMS[arm], args.input_size, args.train_flags)
                runs[arm].append(result)
                print(f"round {round_index} {arm}: {result['epoch_seconds']} s of epochs, "
                      f"{result['images_per_second']} images/s, test {result['metrics'].get('test')}", flush=True)
    speed = {arm: sum(r["images_per_second"] for r in results) / len(results) for arm, results in runs.items()}
    payload["settings"] = {"data": str(args.data), "input_size": args.input_size, "rounds": args.rounds,
                           "arms": {arm: ARMS[arm] for arm in arms}, "train_flags": args.train_flags}
    payload["figures"] = {"runs": runs, "mean_images_per_second": {a: round(s, 2) for a, s in speed.items()},
                          "speedup_vs_first_arm": {a: round(s / speed[arms[0]], 3) for a, s in speed.items()}}
    print(json.dumps(payload["figures"]["speedup_vs_first_arm"]))
    print(f"saved {save('train_threads', payload, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
