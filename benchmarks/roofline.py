"""How close each .tflite variant gets to this CPU's arithmetic: MACs, achieved GMAC/s, and a SGEMM ceiling.

MACs are counted from the .tflite graph itself (an interpreter without delegates, so every op is
listed): CONV_2D is H*W*Cout*kh*kw*Cin per image, DEPTHWISE_CONV_2D H*W*C*kh*kw, FULLY_CONNECTED
rows*units*inputs; other ops (ADD, MEAN, SOFTMAX, ...) are counted as 0 MACs. Each variant is timed
with mdx.runtime.bench at 1 and 2 threads, giving GMAC/s and GMAC/s per thread. The ceiling is a
single-thread numpy SGEMM measured in the same run, in a child process with OPENBLAS_NUM_THREADS=1,
twice: once with this shell's OPENBLAS_* settings, once with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
unset (OpenBLAS then picks its kernel from the CPU); threadpoolctl, when installed, names the kernel.

    python benchmarks/roofline.py runs/demo
    -> benchmarks/results/<hostname>-<simd>/roofline.json

SGEMM is an fp32 ceiling: int8 kernels (XNNPACK QS8) can exceed it, so "x SGEMM" above 1 for int8 is
not an error. Not run by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, save

THREADS = (1, 2)
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "neon", "asimd")

SGEMM_CHILD = r"""
import json, sys, time
import numpy as np
n, repeats = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
a @ b  # warm-up: first call loads the kernel and touches the pages
seconds = []
for _ in range(repeats):
    start = time.perf_counter()
    a @ b
    seconds.append(time.perf_counter() - start)
try:
    from threadpoolctl import threadpool_info
    pools = [{k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")}
             for p in threadpool_info()]
except ImportError:
    pools = None
best, median = min(seconds), sorted(seconds)[len(seconds) // 2]
print(json.dumps({"n": n, "repeats": repeats, "best_s": best, "median_s": median,
                  "gmacs_best": n ** 3 / best / 1e9, "gmacs_median": n ** 3 / median / 1e9, "threadpools": pools}))
"""


def count_macs(path: Path) -> dict[str, Any]:
    """MACs and weight bytes per image of one .tflite, by op type, from the interpreter's op and tensor details."""
    from mdx.runtime.interpreter import load_interpreter

    interpreter, _ = load_interpreter(path, threads=1, xnnpack=False)  # no delegate: every op stays listed
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    macs: dict[str, int] = {}
    weight_bytes = 0
    for op in interpreter._get_ops_details():  # the only per-op listing the Python interpreters offer
        name, inputs, outputs = op["op_name"], list(op["inputs"]), list(op["outputs"])
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        out = [int(d) for d in tensors[outputs[0]]["shape"]]
        weights = tensors[inputs[1]]
        w = [int(d) for d in weights["shape"]]
        weight_bytes += int(np.prod(w)) * np.dtype(weights["dtype"]).itemsize
        if name == "CONV_2D":  # out (N, H, W, Cout), filter (Cout, kh, kw, Cin)
            count = int(np.prod(out)) * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, C)
            count = int(np.prod(out)) * w[1] * w[2]
        else:  # filter (units, inputs); rows = output elements / units
            count = int(np.prod(out)) * w[1]
        macs[name] = macs.get(name, 0) + count
    batch = int(tensors[interpreter.get_input_details()[0]["index"]]["shape"][0]) or 1
    per_image = {k: v // batch for k, v in macs.items()}
    return {"macs": sum(per_image.values()), "macs_by_op": per_image, "weight_bytes": weight_bytes}


def sgemm(n: int, repeats: int, unset: bool) -> dict[str, Any]:
    """Single-thread SGEMM GMAC/s in a child process (only its environment changes)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    removed = {}
    if unset:
        removed = {k: env.pop(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in env}
    done = subprocess.run([sys.executable, "-c", SGEMM_CHILD, str(n), str(repeats)], env=env, capture_output=True,
                          text=True, check=True, timeout=600)
    result = json.loads(done.stdout)
    result["env"] = {k: env.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")}
    result["unset"] = sorted(removed)
    return result


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            present = set(value.split())
            return [f for f in SIMD_FLAGS if f in present]
    return []


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from mdx.runtime.bench import BenchConfig, bench

    models = sorted(Path(args.run).glob("convert/*/model.tflite"))
    if not models:
        raise SystemExit(f"error: no convert/<variant>/model.tflite under {args.run}; pass a `mdx pipeline` run folder")
    ceilings = {"as_configured": sgemm(args.n, args.repeats, unset=False),
                "coretype_unset": sgemm(args.n, args.repeats, unset=True)}
    ceiling = max(c["gmacs_best"] for c in ceilings.values())
    figures: dict[str, Any] = {"sgemm_1t_gmacs": {k: round(c["gmacs_best"], 2) for k, c in ceilings.items()}}
    for path in models:
        variant = path.parent.name
        counted = count_macs(path)
        result = bench(path, BenchConfig(threads=THREADS, runs=args.runs, warmup=args.warmup))
        row: dict[str, Any] = {"macs": counted["macs"], "macs_by_op": counted["macs_by_op"],
                               "weight_bytes": counted["weight_bytes"]}
        for timing in result.timings:
            gmacs = counted["macs"] / (timing.p50_ms / 1e3) / 1e9
            row[f"{timing.threads}t"] = {"p50_ms": round(timing.p50_ms, 4), "gmacs": round(gmacs, 2),
                                         "gmacs_per_thread": round(gmacs / timing.threads, 2),
                                         "per_thread_x_sgemm": round(gmacs / timing.threads / ceiling, 3)}
        figures[variant] = row
        print(f"{variant}: {counted['macs'] / 1e6:.1f} M MACs  "
              + "  ".join(f"{t}t {row[f'{t}t']['p50_ms']:.2f} ms = {row[f'{t}t']['gmacs']:.1f} GMAC/s "
                          f"({row[f'{t}t']['per_thread_x_sgemm']:.2f} x SGEMM/thread)" for t in THREADS), flush=True)
    return {"run": str(Path(args.run).resolve()), "figures": figures, "sgemm": ceilings, "cpu_flags": cpu_flags(),
            "settings": {"threads": list(THREADS), "runs": args.runs, "warmup": args.warmup, "sgemm_n": args.n,
                         "sgemm_repeats": args.repeats, "ceiling": "best single-thread SGEMM of the two settings"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a `mdx pipeline` run folder (convert/<variant>/model.tflite)")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--n", type=int, default=1024, help="SGEMM size (n x n times n x n, float32)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="result JSON (default benchmarks/results/<hostname>-<simd>/)")
    args = parser.parse_args(argv)

    from mdx.errors import MdxError

    facts = context(("threadpoolctl",))
    try:
        result = measure(args)
    except MdxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    for name, c in result["sgemm"].items():
        print(f"SGEMM 1 thread ({name}, {c['env']}): {c['gmacs_best']:.1f} GMAC/s best, "
              f"kernel {[p.get('architecture') for p in c['threadpools'] or []] or 'unknown (no threadpoolctl)'}")
    print(f"saved {save('roofline', {**facts, **result}, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
