"""Full-size training on the bundled chest X-rays: test accuracy/AUC with CIs and wall time, for the
bundled ImageNet weights and (with --with-random-init) for random init, so the value of the import is measured.

The recipe (configs/train_full.json) trains a fixed schedule and keeps the mean of the weights of the
last 4 fine-tuning epochs: validation AUC is too saturated to pick an epoch by (benchmarks/README.md).

    .venv/bin/python benchmarks/train_chest_xray.py [--config benchmarks/configs/train_full.json] [--with-random-init]
    .venv/bin/python benchmarks/train_chest_xray.py --arms none    # random init alone, added to the same file
    .venv/bin/python benchmarks/train_chest_xray.py --seed 1       # another seed, kept beside seed 0's row
    .venv/bin/python benchmarks/train_chest_xray.py --set patience=0 --set augmentation.shift=0.1 --out FILE

Each arm's result keeps its own time, versions and machine; an existing result file keeps the arms
and seeds this run does not train, so they can run in several sittings, as long as they were trained with
the settings this run would give them: a row of another recipe is dropped, with a message.

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


def _same_recipe(name: str, row: dict, every: dict[str, dict]) -> bool:
    """Whether a stored row ('<arm>' or '<arm> seed N') was trained with the settings this run gives its arm."""
    from mdx.train.config import TrainConfig

    arm, _, seed = name.partition(" seed ")
    if arm not in every or "config" not in row:
        return False
    expected = TrainConfig.from_dict({**every[arm], "seed": int(seed or 0)})
    return TrainConfig.from_record(row["config"]) == expected


def _epochs(history_file: Path) -> dict:
    """How long the run trained and what early stopping saw: its validation AUC and loss per epoch."""
    history = json.loads(history_file.read_text())
    return {"run": len(history.get("loss", [])),
            **{key: [round(v, 4) for v in history[key]] for key in ("val_auc", "val_loss") if key in history}}


def _overrides(pairs: list[str]) -> dict:
    """--set KEY=VALUE pairs as a nested dict ('augmentation.shift=0.1'); a value is JSON, else a string."""
    nested: dict = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --set {pair!r}: expected KEY=VALUE, e.g. --set patience=0")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        *parents, leaf = key.split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return nested


def _merged(base: dict, overrides: dict) -> dict:
    return {**base, **{key: _merged(base.get(key) or {}, value) if isinstance(value, dict) else value
                       for key, value in overrides.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "chest_xray")
    parser.add_argument("--config", type=Path, default=REPO / "benchmarks" / "configs" / "train_full.json")
    parser.add_argument("--with-random-init", action="store_true", help="Also train from random init.")
    parser.add_argument("--arms", default=None, help="comma-separated arms to train: bundled, none "
                        "(default: bundled, and none with --with-random-init)")
    parser.add_argument("--random-init-config", type=Path,
                        default=REPO / "benchmarks" / "configs" / "train_full_random_init.json",
                        help="Settings that replace --config's for the random-init run.")
    parser.add_argument("--seed", type=int, default=0, help="the training seed (over any in --config); a row "
                        "of another seed than 0 is kept beside seed 0's, as '<arm> seed N'")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a TrainConfig setting over --config for every arm (repeatable; "
                        "augmentation.NAME for an augmentation), e.g. --set lr_schedule=cosine")
    parser.add_argument("--runs", type=Path, default=REPO / "runs")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/<machine>/train_chest_xray.json")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)

    from mdx.train.config import TrainConfig
    from mdx.train.fit import train

    base = json.loads(args.config.read_text())
    arms = args.arms.split(",") if args.arms else ["bundled", *(["none"] if args.with_random_init else [])]
    unknown = sorted(set(arms) - {"bundled", "none"})
    if unknown:
        raise SystemExit(f"error: --arms {args.arms!r}: unknown arm(s) {unknown}; use bundled and/or none")
    every = {"bundled": base, "none": {**base, **json.loads(args.random_init_config.read_text()), "weights": "none"}}
    every = {arm: _merged(values, _overrides(args.set)) for arm, values in every.items()}
    suffix = f" seed {args.seed}" if args.seed else ""
    settings = {f"{name}{suffix}": {**every[name], "seed": args.seed} for name in arms}
    out = args.out or result_path("train_chest_xray")
    previous = json.loads(out.read_text()) if out.is_file() else {}
    # rows written before arms kept their own facts take the file's
    facts = {key: previous[key] for key in ("command", "versions", "machine") if key in previous}
    results = {}
    for name, row in previous.get("results", {}).items():
        if name in settings:
            continue
        if not _same_recipe(name, row, every):
            print(f"dropping {name!r} from {out}: it was trained with other settings than this run's "
                  f"(git history keeps it; --out FILE writes elsewhere)")
            continue
        results[name] = {**facts, **row}
    for row in results.values():  # rows written before they kept their epochs, while their run is still here
        history = Path(row.get("run", "")) / "history.json"
        if "epochs" not in row and history.is_file():
            row["epochs"] = _epochs(history)
    command = " ".join(["python benchmarks/train_chest_xray.py", *argv])
    from mdx.errors import ConfigError

    try:
        configs = {name: TrainConfig.from_dict(values) for name, values in settings.items()}
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    for name, config in configs.items():
        started = time.perf_counter()
        result = train(args.data, config, args.runs / f"bench-train-{name.replace(' ', '-')}" / "train", overwrite=True, log=print)
        results[name] = {
            "config": config.to_dict(),
            "wall_seconds": round(time.perf_counter() - started, 1),
            "test": _summary(result.metrics["test"]),
            "test_at_argmax": _summary(result.metrics["test_at_argmax"]),
            "validation": _summary(result.metrics["validation"]),
            "epochs": _epochs(result.folder / "history.json"),
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
