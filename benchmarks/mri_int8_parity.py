"""INT8 against FP32 on a run's validation and test splits, for several int8 recipes side by side (issue 18).

Made for the brain MRI set (4 classes, /work/shared/data/brain_tumor_mri), but any `mdx pipeline` run works.
Each candidate is converted from the run's model and checked against the run's FP32 .tflite under issue 4's
gate (agreement >= 0.99, accuracy drop <= 0.5 pt, AUC drop <= 0.01), on the validation rows of the run's
split manifest (where a recipe is chosen) and on its test split (what is reported):

- `default`: `mdx convert`'s default (200 training images, stratified by class, seed 0);
- `count=N`: N training images, stratified as the default;
- `seed=S`: the default count drawn with another seed (how much of a difference is the draw);
- `balanced=N`: N training images per class, equal counts (a symlinked folder of the manifest's train rows);
- `fallback`: `--auto-fallback` stopping at this gate, not at `mdx check`'s looser defaults (which ops it
  keeps in float, what that costs in bytes and latency);
- `qat` / `qat=E`: `--qat` (quantization-aware fine-tuning, mdx.quantize.qat) for E epochs (default 3).

The chosen recipe is the first in the order given that holds the gate on validation.

    .venv/bin/python benchmarks/mri_int8_parity.py /work/mri-run/run [--candidates default,count=500,...] [--out FILE]
    -> benchmarks/results/<hostname>-<simd>/mri_int8_parity.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ISSUE_4_GATE, context, load_test_split, run_files, save

DEFAULT_CANDIDATES = "default,seed=1,count=500,balanced=100,fallback,qat"
N_BOOT = 1000


def load_split(files: dict[str, Any], split: str) -> tuple[np.ndarray, np.ndarray]:
    """The run's `val` (manifest rows) or `test` split, preprocessed as training did."""
    if split == "test":
        inputs, targets, _ = load_test_split(files)
        return inputs, targets
    from mdx.runtime.images import load_files
    from mdx.runtime.manifest import manifest_root, read_manifest, split_files
    from mdx.runtime.preprocess import Preprocessing

    record = files["record"]
    manifest = files["train"] / "split_manifest.csv"
    root = manifest_root(manifest)
    paths, labels = split_files(read_manifest(manifest, root), split, root, tuple(record["labels"]))
    preprocessing = Preprocessing.from_dict(record["preprocessing"])
    images = load_files(paths, labels, tuple(record["labels"]), preprocessing.size, where=str(manifest))
    return preprocessing.normalize(images.images), images.labels


def balanced_folder(files: dict[str, Any], per_class: int, seed: int, work: Path) -> Path:
    """A folder-per-class tree of `per_class` symlinked training rows per class (never val or test rows)."""
    from mdx.runtime.manifest import manifest_root, read_manifest, split_files

    labels = tuple(files["record"]["labels"])
    manifest = files["train"] / "split_manifest.csv"
    root = manifest_root(manifest)
    paths, targets = split_files(read_manifest(manifest, root, check_files=False), "train", root, labels)
    rng = np.random.default_rng(seed)
    folder = work / f"balanced{per_class}"
    targets_array = np.asarray(targets)
    for k, name in enumerate(labels):
        (folder / name).mkdir(parents=True)
        members = np.flatnonzero(targets_array == k)
        for index in sorted(rng.permutation(members)[:per_class].tolist()):
            source = Path(paths[index]).resolve()
            (folder / name / source.name).symlink_to(source)
    return folder


def parity_figures(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray, names: tuple[str, ...],
                   n_boot: int) -> dict[str, Any]:
    """Issue 4's gate on one split, with paired bootstrap 95% intervals of agreement and the drops."""
    from mdx.runtime.parity import Tolerances, compare

    parity = compare(reference, candidate, labels, names, Tolerances(**ISSUE_4_GATE))
    ref_pred, cand_pred = reference.argmax(axis=1), candidate.argmax(axis=1)
    figures = {"n": parity.n, "agreement": round(parity.agreement, 5), "flips": int(np.sum(ref_pred != cand_pred)),
               "flips_by_class": parity.flips,
               "fp32_accuracy": round(parity.reference["accuracy"]["value"], 5),
               "int8_accuracy": round(parity.candidate["accuracy"]["value"], 5),
               "accuracy_drop_pt": round(-100 * parity.deltas["accuracy"], 3) + 0.0,
               "fp32_auc": _round(parity.reference["auc"]["value"]), "int8_auc": _round(parity.candidate["auc"]["value"]),
               "auc_drop": _round(None if parity.deltas["auc"] is None else -parity.deltas["auc"]),
               "passed_issue_4_gate": parity.passed, "failures": [str(f) for f in parity.failures]}
    if n_boot:
        rng = np.random.default_rng(0)
        agree, drop = (ref_pred == cand_pred), (ref_pred == labels).astype(float) - (cand_pred == labels)
        draws = rng.integers(0, len(labels), size=(n_boot, len(labels)))
        figures["agreement_ci95"] = [round(float(q), 5) for q in np.percentile(agree[draws].mean(axis=1), [2.5, 97.5])]
        figures["accuracy_drop_pt_ci95"] = [round(float(q), 3) + 0.0
                                            for q in np.percentile(100 * drop[draws].mean(axis=1), [2.5, 97.5])]
    return figures


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 5)


def convert_candidate(run: Path, name: str, files: dict[str, Any], work: Path,
                      log: Any = print) -> tuple[Path, dict[str, Any]]:
    """Convert the int8 variant of `run` by candidate `name`; (model path, what its record says)."""
    from mdx.convert.convert import ConvertConfig, convert

    kind, _, value = name.partition("=")
    settings: dict[str, Any] = {"variants": ("int8",), "out": work / name.replace("=", "")}
    if kind == "count":
        settings["calibration_count"] = int(value)
    elif kind == "seed":
        settings["calibration_seed"] = int(value)
    elif kind == "balanced":
        labels = files["record"]["labels"]
        settings["calibration_dir"] = balanced_folder(files, int(value), 0, work)
        settings["calibration_count"] = int(value) * len(labels)
    elif kind == "fallback":
        settings.update(auto_fallback=True, fallback_min_agreement=ISSUE_4_GATE["min_agreement"],
                        fallback_max_acc_drop_pt=ISSUE_4_GATE["max_acc_drop_pt"],
                        fallback_max_auc_drop=ISSUE_4_GATE["max_auc_drop"])
    elif kind == "qat":
        settings.update(qat=True, qat_epochs=int(value) if value else None)
    elif kind != "default":
        raise SystemExit(f"error: unknown candidate {name!r}; expected default, count=N, seed=S, balanced=N, fallback "
                         "or qat[=EPOCHS]")
    result = convert(run, ConvertConfig(**settings), on_log=log)["int8"]
    record = json.loads((result.model_path.parent / "record.json").read_text(encoding="utf-8"))
    facts = {"bytes": result.model_path.stat().st_size, "calibration": record.get("calibration")}
    fallback = (record.get("quantization") or {}).get("auto_fallback") or record.get("auto_fallback")
    if fallback:
        facts["auto_fallback"] = fallback
    if record.get("qat"):
        facts["qat"] = record["qat"]
    return result.model_path, facts


def latency_ms(models: dict[str, Path], inputs: np.ndarray) -> dict[str, float]:
    """Single-thread p50 latency of each model on the same images, interleaved in one run."""
    from mdx.runtime.classifier import TfliteClassifier

    classifiers = {name: TfliteClassifier(path, threads=1) for name, path in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(3):
        for index in range(min(10, len(inputs))):
            for name, classifier in classifiers.items():
                started = time.perf_counter()
                classifier.predict_proba(inputs[index:index + 1])
                times[name].append(1000 * (time.perf_counter() - started))
    return {name: round(float(np.median(values)), 3) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder with train/ and convert/{fp32,int8}/ (from `mdx pipeline`)")
    parser.add_argument("--candidates", default=DEFAULT_CANDIDATES, help=f"comma-separated (default {DEFAULT_CANDIDATES})")
    parser.add_argument("--work", type=Path, default=None, help="where the int8 models go (default: temporary)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    facts = context()

    from mdx.errors import MdxError
    from mdx.runtime.classifier import TfliteClassifier

    files = run_files(args.run)
    names = tuple(files["record"]["labels"])
    work = args.work or Path(tempfile.mkdtemp(prefix="mdx-mri-int8-"))
    splits = {split: load_split(files, split) for split in ("val", "test")}
    fp32 = TfliteClassifier(files["models"]["fp32"])
    reference = {split: fp32.predict_proba(inputs) for split, (inputs, _) in splits.items()}
    rows: dict[str, dict[str, Any]] = {}
    models: dict[str, Path] = {"fp32": files["models"]["fp32"]}
    for name in args.candidates.split(","):
        started = time.perf_counter()
        steps: list[str] = []  # auto-fallback's step lines: on a failure, the only trace of what it tried

        def log(line: str, steps: list[str] = steps) -> None:
            print(line, flush=True)
            if line.startswith("auto-fallback:"):
                steps.append(line)
        try:
            model, row = convert_candidate(args.run, name, files, work, log)
        except MdxError as exc:  # a candidate that cannot hold parity (auto-fallback's ParityError) is a row
            rows[name] = {"error": str(exc), "steps": steps}
            print(f"{name}: {exc}", flush=True)
            continue
        row["convert_s"] = round(time.perf_counter() - started, 1)
        candidate = TfliteClassifier(model)
        for split, (inputs, labels) in splits.items():
            row[split] = parity_figures(reference[split], candidate.predict_proba(inputs), labels, names,
                                        N_BOOT if split == "test" else 0)
            print(f"{name} on {split}: agreement {row[split]['agreement']:.4f}, accuracy drop "
                  f"{row[split]['accuracy_drop_pt']:.2f} pt, AUC drop {row[split]['auc_drop']}, "
                  f"gate {'held' if row[split]['passed_issue_4_gate'] else 'missed'}", flush=True)
        rows[name], models[name] = row, model
    latency = latency_ms(models, splits["test"][0])
    for name, ms in latency.items():
        if name in rows:
            rows[name]["latency_p50_ms_1thread"] = ms
    chosen = next((name for name, row in rows.items() if row.get("val", {}).get("passed_issue_4_gate")), None)
    payload = {**facts, "command": " ".join(["benchmarks/mri_int8_parity.py", *(argv or sys.argv[1:])]),
               "run": str(args.run.resolve()), "labels": list(names),
               "settings": {"gate": ISSUE_4_GATE, "candidates": args.candidates.split(","), "n_boot": N_BOOT,
                            "rule": "argmax (4 classes)", "choose_on": "val", "report_on": "test"},
               "fp32": {"bytes": files["models"]["fp32"].stat().st_size, "latency_p50_ms_1thread": latency["fp32"]},
               "chosen_on_validation": chosen,
               "figures": {name: row for name, row in rows.items()}}
    print(f"chosen on validation: {chosen}; saved {save('mri_int8_parity', payload, args.out)}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
