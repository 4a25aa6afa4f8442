"""Where a run's int8 decisions part from FP32: flips by rule, exact ties, and the int8 logit error.

For the test split of one run, with XNNPACK on and off:
- agreement under `mdx check`'s rule (p(positive) >= 0.5) and under argmax, which differ only on
  ties: int8 probabilities of exactly 128/256 for both classes, which `>=` counts as the positive class;
- the int8 error of the logit difference, log(p / (1 - p)), on the images both models put between
  0.02 and 0.98 (outside that the int8 output saturates), as mean and standard deviation: the mean is
  what the calibration's output correction should have removed, the spread what no bias can remove.

    .venv/bin/python benchmarks/int8_flips.py runs/demo
    -> benchmarks/results/<hostname>-<simd>/int8_flips.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, load_test_split, run_files, save

MID = (0.02, 0.98)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def compare(reference: np.ndarray, candidate: np.ndarray, positive: int = 1) -> dict[str, Any]:
    """Flips of `candidate` against `reference` (N, 2) probabilities, by rule, and its logit error."""
    ref_p, cand_p = reference[:, positive].astype(np.float64), candidate[:, positive].astype(np.float64)
    by_rule = (cand_p >= 0.5) == (ref_p >= 0.5)
    by_argmax = candidate.argmax(axis=1) == reference.argmax(axis=1)
    ties = candidate[:, 0] == candidate[:, 1]
    mid = (ref_p > MID[0]) & (ref_p < MID[1]) & (cand_p > MID[0]) & (cand_p < MID[1])
    error = _logit(cand_p) - _logit(ref_p)
    flipped = ~by_rule
    return {"n": len(ref_p), "agreement_threshold_0.5": round(float(by_rule.mean()), 5),
            "agreement_argmax": round(float(by_argmax.mean()), 5), "exact_ties": int(ties.sum()),
            "flips": int(flipped.sum()), "flips_that_are_ties": int((flipped & ties).sum()),
            "flips_to_positive": int((flipped & (cand_p >= 0.5)).sum()),
            "mid_range_images": int(mid.sum()),
            "logit_error_mean": round(float(error[mid].mean()), 4) if mid.any() else None,
            "logit_error_std": round(float(error[mid].std()), 4) if mid.any() else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder with train/ and convert/{fp32,int8}/")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from mdx.runtime.classifier import TfliteClassifier

    files = run_files(args.run)
    inputs, _, labels = load_test_split(files)
    if len(labels) != 2:
        raise SystemExit(f"error: {args.run} has {len(labels)} classes; ties and the logit difference are for two")
    reference = TfliteClassifier(files["models"]["fp32"]).predict_proba(inputs)
    results = {}
    for xnnpack in (True, False):
        candidate = TfliteClassifier(files["models"]["int8"], xnnpack=xnnpack).predict_proba(inputs)
        results["xnnpack" if xnnpack else "builtin"] = compare(reference, candidate)
        print(("xnnpack" if xnnpack else "builtin"), results["xnnpack" if xnnpack else "builtin"], flush=True)
    payload = {**context(), "run": str(args.run.resolve()), "labels": list(labels), "figures": results}
    print(f"saved {save('int8_flips', payload, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
