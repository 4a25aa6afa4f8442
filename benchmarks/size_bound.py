"""How small can a pruned int8 .tflite get? Compressed sizes against an entropy lower bound.

For each int8 model of a prune sweep (`benchmarks/prune_sweep.py` output), read the int8 convolution
and dense kernels back with the interpreter (as `mdx prune` checks sparsity) and compute their order-0 entropy: the fewest bytes any coder that
treats weights as independent symbols (gzip and xz included, in effect) can store them in. Everything
else in the file (biases, scales, graph) is counted at its gzip size (the file gzipped with its kernels
zeroed). The sum is what an ideal coder of independent weights would need: gzip can beat it a little on
dense models (repeats), but not by much. Ratios are to the dense FP32
.tflite's raw bytes and to its gzip bytes (prune_sweep.py's "gzip x dense fp32" is the latter).

    python benchmarks/size_bound.py runs/demo/prune_sweep
    -> benchmarks/results/<hostname>-<simd>/size_bound.json (and a table on stdout)

Reads existing models only; runs in seconds.
"""

from __future__ import annotations

import argparse
import gzip
import lzma
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, save


def measure(path: Path, fp32_bytes: int, fp32_gzip_bytes: int) -> dict[str, Any]:
    """Sizes of `path` and the estimate: kernel entropy + the gzip size of the file with its kernels zeroed."""
    from mdx.train.sparsity import tflite_kernels

    data = path.read_bytes()
    blanked = bytearray(data)
    weights, zeros, bits = 0, 0, 0.0
    for kernel in tflite_kernels(path):
        values = kernel.values
        if values.dtype != np.int8:
            continue
        _, counts = np.unique(values, return_counts=True)
        p = counts / values.size
        bits += float(-(p * np.log2(p)).sum() * values.size)
        weights += values.size
        zeros += int(np.count_nonzero(kernel.zeros()))
        stored = values.tobytes()
        at = data.find(stored)
        if at >= 0:
            blanked[at : at + len(stored)] = bytes(len(stored))
    rest = len(gzip.compress(bytes(blanked), compresslevel=9, mtime=0))
    sizes = {"raw": len(data), "gzip": len(gzip.compress(data, compresslevel=9, mtime=0)),
             "xz": len(lzma.compress(data, preset=9)), "bound": round(bits / 8 + rest)}
    return {"bytes": sizes, "kernel_weights": weights, "zero_fraction": round(zeros / max(weights, 1), 4),
            "kernel_entropy_bytes": round(bits / 8), "rest_gzip_bytes": rest,
            "ratio_to_fp32": {k: round(v / fp32_bytes, 4) for k, v in sizes.items()},
            "ratio_to_fp32_gzip": {k: round(v / fp32_gzip_bytes, 4) for k, v in sizes.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="a prune_sweep folder: dense/ and prune-*/tflite/")
    args = parser.parse_args()
    dense_fp32 = args.sweep / "dense" / "fp32.tflite"
    if not dense_fp32.is_file():
        raise SystemExit(f"error: {dense_fp32} not found; run benchmarks/prune_sweep.py first")
    fp32_bytes = dense_fp32.stat().st_size
    fp32_gzip = len(gzip.compress(dense_fp32.read_bytes(), compresslevel=9, mtime=0))
    models = {"dense": args.sweep / "dense" / "int8.tflite"}
    models |= {p.name: p / "tflite" / "int8.tflite" for p in sorted(args.sweep.glob("prune-*"))
               if (p / "tflite" / "int8.tflite").is_file()}
    figures = {name: measure(path, fp32_bytes, fp32_gzip) for name, path in models.items()}
    print(f"{'int8 model':<12} {'zeros':>6} {'raw':>7} {'gzip':>7} {'xz':>7} {'bound':>7}   x dense FP32 ({fp32_bytes} B)"
          f"  | gzip, bound x dense FP32 gzip ({fp32_gzip} B)")
    for name, row in figures.items():
        r, g = row["ratio_to_fp32"], row["ratio_to_fp32_gzip"]
        print(f"{name:<12} {row['zero_fraction']:>6.3f} {r['raw']:>7.3f} {r['gzip']:>7.3f} {r['xz']:>7.3f} {r['bound']:>7.3f}"
              f"  | {g['gzip']:>6.3f} {g['bound']:>6.3f}")
    payload = {**context(), "sweep": str(args.sweep), "dense_fp32_bytes": fp32_bytes, "dense_fp32_gzip_bytes": fp32_gzip,
               "figures": figures,
               "note": "bound = order-0 entropy of the int8 kernels + the rest of the file at its gzip rate"}
    print(f"size_bound: saved {save('size_bound', payload)}")


if __name__ == "__main__":
    main()
