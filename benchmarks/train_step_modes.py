"""How long the same fine-tuning pass takes, pass after pass, and how many cores it keeps busy meanwhile.

On `vm-avx512_vnni` a pass of 20 batches through the demo's classifier at 128 px runs in one of two modes.
It takes either ~140-190 ms a batch at ~1.75 busy cores, or a nearly constant 259-261 ms at ~1.15 cores
with the other core idle. This script records every pass's ms a batch, the process's CPU seconds per
wall second, and the machine's idle and steal time. For comparison it also times a numpy matmul loop,
which holds the machine's 2 cores steadily, in the same process.

The slow mode was an end-of-epoch stall of tf.data's autotuner, not slower steps (epoch_end_stall.py,
benchmarks/README.md); mdx's pipelines now run with it off, so on today's code this script should see
only the fast mode, and a slow pass here means the stall is back.

    .venv/bin/python benchmarks/train_step_modes.py [--size 128] [--images 640] [--passes 8]
    -> benchmarks/results/<hostname>-<simd>/train_step_modes.json

Environment variables (TF_NUM_INTEROP_THREADS, TF_NUM_INTRAOP_THREADS, TF_ENABLE_ONEDNN_OPTS) are
recorded with the result, so runs under each setting can be told apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, save
from train_step_profile import _compiled, random_dataset

ENVIRONMENT = ("TF_NUM_INTEROP_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_ENABLE_ONEDNN_OPTS")


def _cpu_jiffies() -> tuple[int, int]:
    """(idle, steal) jiffies of the whole machine so far, from /proc/stat (0, 0 where there is none)."""
    try:
        fields = Path("/proc/stat").read_text(encoding="utf-8").splitlines()[0].split()
    except OSError:
        return 0, 0
    return int(fields[4]), int(fields[8]) if len(fields) > 8 else 0


def _timed(work) -> dict[str, float]:
    """One call of `work`: wall seconds, CPU seconds of this process per wall second, idle and steal s."""
    idle0, steal0 = _cpu_jiffies()
    cpu0, wall0 = os.times(), time.perf_counter()
    work()
    cpu1, wall1 = os.times(), time.perf_counter()
    idle1, steal1 = _cpu_jiffies()
    wall = wall1 - wall0
    tick = os.sysconf("SC_CLK_TCK")
    return {"wall_s": round(wall, 3),
            "busy_cores": round((cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall, 2),
            "idle_s": round((idle1 - idle0) / tick, 2), "steal_s": round((steal1 - steal0) / tick, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--passes", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    config, dataset = random_dataset(args.size, args.images)
    batches = int(np.ceil(args.images / 32))
    model = _compiled("float32", True, config)
    model.fit(dataset.take(3), verbose=0)  # trace and compile outside the timing
    matrix = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    passes = []
    for index in range(args.passes):
        step = _timed(lambda: model.fit(dataset, verbose=0))
        step["ms_per_batch"] = round(step["wall_s"] / batches * 1000, 1)
        matmul = _timed(lambda: [matrix @ matrix for _ in range(20)])
        passes.append({"fine_tuning": step, "numpy_matmul_x20": matmul})
        print(f"pass {index + 1}: {step['ms_per_batch']:.0f} ms/batch at {step['busy_cores']} cores "
              f"(idle {step['idle_s']} s, steal {step['steal_s']} s); matmul {matmul['wall_s'] * 1000:.0f} ms "
              f"at {matmul['busy_cores']} cores", flush=True)
    payload = context()
    payload["settings"] = {"size": args.size, "images": args.images, "batch_size": 32, "passes": args.passes,
                           "environment": {name: os.environ.get(name) for name in ENVIRONMENT}}
    payload["figures"] = {"passes": passes}
    print(f"saved {save('train_step_modes', payload, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
