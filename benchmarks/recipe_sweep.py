"""Training recipes side by side on one data set and one split: chosen on validation, reported on test (issue 18).

Each recipe is trained by the product itself (`mdx train DATA --out WORK/<name> [--config FILE]`); every
run after the first reuses the first run's split manifest (`--split-manifest`), so all recipes see the
same training, validation and test images. The best recipe is the one with the highest validation AUC
(accuracy breaking ties); the test figures, with their bootstrap 95% intervals, are only reported, and
the result says whether the default recipe comes within 2 points of test accuracy of that best one.

    .venv/bin/python benchmarks/recipe_sweep.py DATA --recipes default,benchmarks/configs/train_full.json \\
        [--work DIR] [--reuse] [--name NAME] [-- extra mdx train flags, e.g. --input-size 128]
    -> benchmarks/results/<hostname>-<simd>/<NAME>.json

`default` is `mdx train` with no --config. A recipe is named by its file's stem. With --reuse, a run
folder that already holds train/record.json is read, not trained again (an interrupted sweep resumes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, save

MARGIN_PT = 2.0  # issue 18: the default within 2 points of the best recipe


def _metric(metrics: dict[str, Any], split: str, name: str) -> dict[str, Any]:
    value = (metrics.get(split) or {}).get(name) or {}
    return {"value": None if value.get("value") is None else round(float(value["value"]), 4),
            "ci95": [round(float(v), 4) for v in value.get("ci95") or []]}


def _train(data: Path, name: str, recipe: Path | None, out: Path, manifest: Path | None, extra: list[str],
           reuse: bool) -> dict[str, Any]:
    record_path = out / "train" / "record.json"
    seconds = None
    if not (reuse and record_path.is_file()):
        command = [str(Path(sys.executable).with_name("mdx")), "train", str(data), "--out", str(out), *extra]
        if recipe is not None:
            command += ["--config", str(recipe)]
        if manifest is not None:
            command += ["--split-manifest", str(manifest)]
        print(f"{name}: {' '.join(command)}", flush=True)
        started = time.perf_counter()
        done = subprocess.run(command, check=False)
        seconds = round(time.perf_counter() - started, 1)
        if done.returncode != 0:
            raise SystemExit(f"error: {name}: mdx train exited {done.returncode}; see its output above")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    metrics = record["metrics"]
    row = {"recipe": str(recipe) if recipe else "default (no --config)", "run": str(out),
           "wall_s": seconds if seconds is not None else record.get("wall_seconds"),
           "epochs_run": record.get("epochs_run"), "config": record.get("config"),
           "val_accuracy": _metric(metrics, "validation", "accuracy"), "val_auc": _metric(metrics, "validation", "auc"),
           "test_accuracy": _metric(metrics, "test", "accuracy"), "test_auc": _metric(metrics, "test", "auc"),
           "n": {"val": (metrics.get("validation") or {}).get("n"), "test": (metrics.get("test") or {}).get("n")}}
    print(f"{name}: val accuracy {row['val_accuracy']['value']} AUC {row['val_auc']['value']}; test accuracy "
          f"{row['test_accuracy']['value']} {row['test_accuracy']['ci95']} AUC {row['test_auc']['value']}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a data folder as `mdx train` takes it")
    parser.add_argument("--recipes", default="default,benchmarks/configs/train_full.json",
                        help="comma-separated: default and/or recipe files (JSON or YAML)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/mdx-recipe-sweep"), help="where the runs go")
    parser.add_argument("--reuse", action="store_true", help="read runs that already finished instead of retraining")
    parser.add_argument("--name", default="recipe_sweep", help="result file name")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    facts = context()
    rows: dict[str, dict[str, Any]] = {}
    manifest: Path | None = None
    for entry in args.recipes.split(","):
        recipe = None if entry == "default" else Path(entry)
        if recipe is not None and not recipe.is_file():
            raise SystemExit(f"error: recipe {recipe} not found; pass default or a JSON/YAML recipe file")
        name = "default" if recipe is None else recipe.stem
        rows[name] = _train(args.data, name, recipe, args.work / name, manifest, extra, args.reuse)
        if manifest is None:
            manifest = args.work / name / "train" / "split_manifest.csv"
    best = max(rows, key=lambda n: (rows[n]["val_auc"]["value"] or 0.0, rows[n]["val_accuracy"]["value"] or 0.0))
    summary: dict[str, Any] = {"best_on_validation": best}
    if "default" in rows:
        gap = 100 * (rows[best]["test_accuracy"]["value"] - rows["default"]["test_accuracy"]["value"])
        summary.update(default_test_accuracy_gap_pt=round(gap, 2), margin_pt=MARGIN_PT,
                       default_within_margin=bool(gap <= MARGIN_PT))
    payload = {**facts, "command": " ".join(["benchmarks/recipe_sweep.py", *(sys.argv[1:] if argv is None else argv)]),
               "data": str(args.data.resolve()), "extra_train_flags": extra, "split_manifest": str(manifest),
               "settings": {"choose_on": "validation AUC, then accuracy", "report_on": "test"},
               "summary": summary, "recipes": rows}
    print(f"best on validation: {best}; {json.dumps(summary)}; saved {save(args.name, payload, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
