"""Full-size training on the bundled chest X-rays: test accuracy/AUC with CIs and wall time, for the
bundled ImageNet weights and (with --with-random-init) for random init, so the value of the import is measured.

    .venv/bin/python benchmarks/train_chest_xray.py [--config benchmarks/configs/train_full.json] [--with-random-init]
    .venv/bin/python benchmarks/train_chest_xray.py --arms none    # random init alone, added to the same file

Each arm's result keeps its own time, versions and machine; an existing result file keeps the arms
this run does not train, so two arms can run in two sittings.

Random init trains every layer from the first epoch at a higher learning rate
(benchmarks/configs/train_full_random_init.json, merged over --config): the transfer-learning
schedule, a frozen backbone and then its top blocks at 1e-4, would leave random features frozen and
overstate what the import is worth.

Writes benchmarks/results/<hostname>-<simd>/train_chest_xray.json (and the runs under runs/bench-train-*).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mdx.runtime.files import atomic_write_json
from mdx.runtime.machine import RELEVANT_PACKAGES, machine_facts, package_versions

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from common import result_path


def _summary(metrics: dict) -> dict:
    keep = ("accuracy", "sensitivity", "specificity", "f1", "auc")
    return {name: metrics[name] for name in keep if metrics.get(name)} | {"threshold": metrics.get("threshold")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "chest_xray")
    parser.add_argument("--config", type=Path, default=REPO / "benchmarks" / "configs" / "train_full.json")
    parser.add_argument("--with-random-init", action="store_true", help="Also train from random init.")
    parser.add_argument("--arms", default=None, help="comma-separated arms to train: bundled, none "
                        "(default: bundled, and none with --with-random-init)")
    parser.add_argument("--random-init-config", type=Path,
                        default=REPO / "benchmarks" / "configs" / "train_full_random_init.json",
                        help="Settings that replace --config's for the random-init run.")
    parser.add_argument("--runs", type=Path, default=REPO / "runs")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/<machine>/train_chest_xray.json")
    args = parser.parse_args()

    from mdx.train.config import TrainConfig
    from mdx.train.fit import train

    base = json.loads(args.config.read_text())
    arms = args.arms.split(",") if args.arms else ["bundled", *(["none"] if args.with_random_init else [])]
    unknown = sorted(set(arms) - {"bundled", "none"})
    if unknown:
        raise SystemExit(f"error: --arms {args.arms!r}: unknown arm(s) {unknown}; use bundled and/or none")
    every = {"bundled": base, "none": {**base, **json.loads(args.random_init_config.read_text()), "weights": "none"}}
    settings = {name: every[name] for name in arms}
    out = args.out or result_path("train_chest_xray")
    previous = json.loads(out.read_text()) if out.is_file() else {}
    # rows written before arms kept their own facts take the file's
    facts = {key: previous[key] for key in ("command", "versions", "machine") if key in previous}
    results = {name: {**facts, **row} for name, row in previous.get("results", {}).items() if name not in settings}
    command = " ".join(["python benchmarks/train_chest_xray.py", *sys.argv[1:]])
    for name, values in settings.items():
        config = TrainConfig.from_dict(values)
        started = time.perf_counter()
        result = train(args.data, config, args.runs / f"bench-train-{name}" / "train", overwrite=True, log=print)
        results[name] = {
            "config": config.to_dict(),
            "wall_seconds": round(time.perf_counter() - started, 1),
            "test": _summary(result.metrics["test"]),
            "test_at_argmax": _summary(result.metrics["test_at_argmax"]),
            "validation": _summary(result.metrics["validation"]),
            "run": str(result.folder),
            "command": command,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": package_versions(RELEVANT_PACKAGES),
            "machine": machine_facts(),
        }
        test = result.metrics["test"]
        print(f"{name}: test accuracy {test['accuracy']['value']:.3f} {test['accuracy']['ci95']}  "
              f"AUC {test['auc']['value']:.3f} {test['auc']['ci95']}  in {results[name]['wall_seconds']:.0f} s")
    atomic_write_json(out, {"benchmark": "train_chest_xray",
                            "command": command,
                            "results": results, "versions": package_versions(RELEVANT_PACKAGES),
                            "machine": machine_facts()})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
