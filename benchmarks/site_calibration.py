"""INT8 calibrated on the deployment site's own unlabelled images, against INT8 calibrated on the training split.

The run's test split stands in for the site: int8's error follows the images' distribution, and on the
chest X-rays the test split is shifted from train (benchmarks/README.md, "Training runs at 128 px").
The test split is cut in two halves by patient (the train record's `val_group_pattern`, so no patient
is in both), each half is copied into one flat folder without labels, and the run is converted to
int8 three times per seed: calibrated on the training split (`mdx convert`'s default), on half A and
on half B (the first of these is the run's own `convert/int8` when it was built with the same
calibration count and seed and no other option, as `mdx pipeline` builds it). Each site-calibrated model is checked against FP32 on the half it did not see, the default
one on both halves; the pooled figures (all test images, each judged by a model that never saw it)
use `mdx check`'s rule and issue 4's gate (agreement >= 0.99, accuracy drop <= 0.5 pt). The seed
picks which images a calibration draws; several seeds show how much of a difference is the draw.

    .venv/bin/python benchmarks/site_calibration.py runs/demo [--calibration-seeds 0,1,2] [--work DIR] [--out FILE]
    -> benchmarks/results/<hostname>-<simd>/site_calibration.json
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ISSUE_4_GATE, check_figures, context, run_files, save

HALVES = ("A", "B")
# convert options under which the run's own convert/int8 is the default calibration this script would build
_DEFAULT_INT8 = {"calibration_dir": None, "io": None, "bias_correction": True, "auto_fallback": False, "qat": False,
                 "size": None, "mean": None, "std": None, "labels_file": None}


def run_int8(run: Path, count: int, seed: int) -> Path | None:
    """RUN/convert/int8/model.tflite when its record shows it calibrated as this script's default arm would be."""
    import json

    from mdx.quantize.calibration import DEFAULT_COUNT

    folder = run / "convert" / "int8"
    try:
        config = json.loads((folder / "record.json").read_text())["config"]
    except (OSError, ValueError, KeyError):
        return None
    same = (config.get("calibration_count") or DEFAULT_COUNT) == count and config.get("calibration_seed") == seed
    default = all(config.get(key) == value for key, value in _DEFAULT_INT8.items())
    return folder / "model.tflite" if same and default and (folder / "model.tflite").is_file() else None


def split_by_patient(test_dir: Path, pattern: str | None, work: Path) -> dict[str, dict[str, Path]]:
    """Per half: a labelled folder-per-class copy (to check on) and a flat unlabelled one (to calibrate on)."""
    from mdx.runtime.images import IMAGE_SUFFIXES, list_classes

    group = re.compile(pattern) if pattern else None
    folders = {half: {"labelled": work / half / "labelled", "site": work / half / "site"} for half in HALVES}
    for paths in folders.values():
        paths["site"].mkdir(parents=True)
    copied = dict.fromkeys(HALVES, 0)  # site images are numbered: a flat folder must not name their class
    for name in list_classes(test_dir):
        for image in sorted((test_dir / name).iterdir()):
            if not (image.is_file() and image.suffix.lower() in IMAGE_SUFFIXES):
                continue
            found = group.search(image.name) if group else None
            key = found.group(0) if found else image.stem
            half = HALVES[zlib.crc32(key.encode()) % 2]
            labelled = folders[half]["labelled"] / name
            labelled.mkdir(parents=True, exist_ok=True)
            shutil.copy2(image, labelled / image.name)
            shutil.copy2(image, folders[half]["site"] / f"{copied[half]:05d}{image.suffix}")
            copied[half] += 1
    return folders


def pooled(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Several checks on disjoint images as one: agreement and accuracies weighted by their image counts."""
    n = sum(row["n"] for row in rows)
    weighted = {key: sum(row[key] * row["n"] for row in rows) / n for key in ("agreement", "fp32_accuracy", "int8_accuracy")}
    drop = 100 * (weighted["fp32_accuracy"] - weighted["int8_accuracy"])
    return {"n": n, "agreement": round(weighted["agreement"], 5), "flips": sum(row["flips"] for row in rows),
            "fp32_accuracy": round(weighted["fp32_accuracy"], 5), "int8_accuracy": round(weighted["int8_accuracy"], 5),
            "accuracy_drop_pt": round(drop, 3) + 0.0,  # + 0.0: no "-0.0" in the file
            "meets_gate": weighted["agreement"] >= ISSUE_4_GATE["min_agreement"] and drop <= ISSUE_4_GATE["max_acc_drop_pt"] + 1e-9}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder with train/ and convert/fp32/ (from `mdx pipeline`)")
    parser.add_argument("--work", type=Path, default=None, help="where the halves and the three int8 models go "
                        "(default: a temporary folder, removed at the end)")
    parser.add_argument("--calibration-count", type=int, default=200)
    parser.add_argument("--calibration-seeds", default="0", help="comma-separated seeds: which images each "
                        "calibration draws; one row per seed, side by side")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    seeds = [int(seed) for seed in args.calibration_seeds.split(",")]
    facts = context()  # now, so that its load average is the one at the start

    from mdx.convert.convert import ConvertConfig, convert
    from mdx.runtime.check import check
    from mdx.runtime.evaluate import EvaluateConfig
    from mdx.runtime.parity import Tolerances

    files = run_files(args.run)
    record = files["record"]
    test_dir = Path((record.get("data") or {}).get("test_dir") or "")
    if not test_dir.is_dir():
        raise SystemExit(f"error: the run's test split {str(test_dir)!r} is not on this machine")
    work = args.work or Path(tempfile.mkdtemp(prefix="mdx-site-calibration-"))
    if args.work and work.exists():
        raise SystemExit(f"error: {work} exists; pass a new --work folder")
    halves = split_by_patient(test_dir, record["config"].get("val_group_pattern"), work / "halves")
    fp32 = files["models"]["fp32"]
    gate = Tolerances(**ISSUE_4_GATE)
    checks: dict[str, dict[str, Any]] = {}
    figures: dict[str, dict[str, Any]] = {}
    reused: list[str] = []
    for seed in seeds:
        for calibration in ("train", *HALVES):
            site = None if calibration == "train" else halves[calibration]["site"]
            model = run_int8(args.run, args.calibration_count, seed) if calibration == "train" else None
            if model is not None:
                print(f"seed {seed}: calibrated on train: the run's own {model} (same calibration)", flush=True)
                reused.append(str(model))
            else:
                config = ConvertConfig(variants=("int8",), calibration_count=args.calibration_count,
                                       calibration_seed=seed, calibration_dir=site,
                                       out=work / f"seed{seed}" / f"int8-{calibration}")
                model = convert(args.run, config, on_log=print)["int8"].model_path
            for half in HALVES:
                if calibration == half:
                    continue  # a model is never judged on the images it was calibrated on
                parity = check(model, fp32, halves[half]["labelled"], EvaluateConfig(threshold=0.5, n_boot=0), gate).parity
                checks[f"seed {seed}: calibrated on {calibration}, checked on {half}"] = check_figures(parity)
                print(f"seed {seed}: calibrated on {calibration}, checked on {half}: {parity.summary()}", flush=True)
        figures[f"seed {seed}: training split calibration (default)"] = pooled(
            [checks[f"seed {seed}: calibrated on train, checked on {half}"] for half in HALVES])
        figures[f"seed {seed}: site calibration, each half by the model calibrated on the other"] = pooled(
            [checks[f"seed {seed}: calibrated on B, checked on A"], checks[f"seed {seed}: calibrated on A, checked on B"]])
    for name, row in figures.items():
        print(f"{name}: agreement {row['agreement']:.4f} ({row['flips']} flips in {row['n']}), "
              f"accuracy drop {row['accuracy_drop_pt']:.2f} pt, gate {'met' if row['meets_gate'] else 'missed'}")
    payload = {**facts, "command": " ".join(["benchmarks/site_calibration.py", *(argv or sys.argv[1:])]),
               "run": str(args.run.resolve()), "test_dir": str(test_dir),
               "halves": {half: {"images": sum(1 for _ in halves[half]["site"].iterdir())} for half in HALVES},
               "settings": {"calibration_count": args.calibration_count, "calibration_seeds": seeds, "gate": ISSUE_4_GATE,
                            "group_pattern": record["config"].get("val_group_pattern")},
               "reused_int8": reused,
               "figures": figures, "checks": checks}
    print(f"saved {save('site_calibration', payload, args.out)}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
