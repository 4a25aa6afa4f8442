"""Several `mdx train` runs side by side: what each changed, its test figures, time, versions and machine.

Each run was made by a command of its own (`mdx train ...`, recorded in its record.json); this gathers
their figures into one result file, with the settings that differ between them, so that an ablation
quoted in a README comes from the runs' own records.

    .venv/bin/python benchmarks/train_runs.py RUN_OR_TRAIN_DIR... --name NAME
    -> benchmarks/results/<hostname>-<simd>/NAME.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, save


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _value(metric: Any) -> float:
    return round(float(metric["value"] if isinstance(metric, dict) else metric), 4)


def _train_record(path: Path) -> dict[str, Any]:
    for candidate in (path / "record.json", path / "train" / "record.json"):
        if candidate.is_file():
            record = json.loads(candidate.read_text(encoding="utf-8"))
            if record.get("stage") == "train":
                return record
    raise SystemExit(f"error: {path} holds no train record.json; pass a run folder or its train/ folder")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--name", required=True, help="the result file's name (and benchmark name)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    records = {str(path): _train_record(path) for path in args.runs}
    # a setting a record lacks was added after it was written: its absence means it did not exist, not a value
    configs = {path: _flat({k: v for k, v in record["config"].items() if k != "data_dir"}) for path, record in records.items()}
    keys = sorted({key for config in configs.values() for key in config})
    differing = [key for key in keys if len({json.dumps(config.get(key)) for config in configs.values()}) > 1]
    rows = {}
    for path, record in records.items():
        test = record["metrics"]["test"]
        rows[path] = {"settings": {key: configs[path].get(key) for key in differing},
                      "test": {name: _value(test[name]) for name in ("accuracy", "sensitivity", "specificity", "auc")},
                      "test_accuracy_ci95": test["accuracy"].get("ci95") if isinstance(test["accuracy"], dict) else None,
                      "threshold": record.get("threshold"), "wall_seconds": record.get("wall_seconds"),
                      "created": record.get("created"), "versions": record.get("versions"), "machine": record.get("machine")}
        print(f"{path}: {rows[path]['settings']}  test accuracy {rows[path]['test']['accuracy']:.3f}  "
              f"AUC {rows[path]['test']['auc']:.3f}  specificity {rows[path]['test']['specificity']:.3f}")
    payload = {**context(), "command": " ".join(["benchmarks/train_runs.py", *(argv or sys.argv[1:])]),
               "shared_settings": {key: next(iter(configs.values())).get(key) for key in keys if key not in differing},
               "figures": rows}
    print(f"saved {save(args.name, payload, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
