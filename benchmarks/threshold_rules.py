"""Which decision threshold does each rule pick on validation, and what does it score on test?

For each trained model (a `mdx train` or `mdx prune` folder), rebuild its validation split exactly as
training did, predict validation and test with the Keras model, and compare four rules:

- `argmax_j`: plain Youden's J maximum (mdx's rule before 2026-12-01);
- `one_se`: Youden's J with the one-standard-error rule toward 0.5 (mdx's rule now);
- `paired`: the threshold with the largest J gain over 0.5 among those whose gain exceeds one
  standard error of the paired difference (from the images the two thresholds classify differently),
  i.e. "does validation significantly prefer another threshold?";
- `0.5`: the default.

    python benchmarks/threshold_rules.py runs/demo/train [more folders...]
    -> benchmarks/results/<hostname>-<simd>/threshold_rules.json (and a table on stdout)

Binary models only. Takes a minute per model at 128 px (one pass over validation and test).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import context, save


def argmax_j(labels: np.ndarray, scores: np.ndarray) -> float:
    from mdx.runtime.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(labels, scores)
    return float(thresholds[1:][int(np.argmax((tpr - fpr)[1:]))])


def paired(labels: np.ndarray, scores: np.ndarray, default: float = 0.5) -> float:
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    at_default = scores >= default
    j_default = at_default[y].mean() - at_default[~y].mean()
    best_gain, best = 0.0, default
    for t in np.unique(scores):
        at_t = scores >= t
        gain = at_t[y].mean() - at_t[~y].mean() - j_default
        se = np.sqrt(np.sum(at_t[y] != at_default[y]) / n_pos**2 + np.sum(at_t[~y] != at_default[~y]) / n_neg**2)
        if gain > se and (gain > best_gain or (gain == best_gain and abs(t - default) < abs(best - default))):
            best_gain, best = gain, float(t)
    return best


def measure(folder: Path) -> dict[str, Any]:
    from mdx.records import read_record
    from mdx.runtime.metrics import youden_threshold
    from mdx.runtime.preprocess import Preprocessing
    from mdx.train.data import load_splits
    from mdx.train.keras_load import load_model

    record = read_record(folder)
    config = record.get("train_config") or record["config"]
    data = Path(record["data"]["root"])
    pre = Preprocessing.from_dict(record["preprocessing"])
    splits = load_splits(data, size=pre.size, val_fraction=float(config["val_fraction"]), seed=int(config["seed"]),
                         max_images_per_class=int(config.get("max_images_per_class", 0)),
                         group_pattern=str(config.get("val_group_pattern", "")))
    model = load_model(folder / "model.keras")
    val = model.predict(pre.normalize(splits.val.images), batch_size=64, verbose=0)[:, 1].astype(np.float64)
    test = model.predict(pre.normalize(splits.test.images), batch_size=64, verbose=0)[:, 1].astype(np.float64)
    rules = {"argmax_j": argmax_j(splits.val.labels, val), "one_se": youden_threshold(splits.val.labels, val),
             "paired": paired(splits.val.labels, val), "0.5": 0.5}
    rows = {}
    for name, threshold in rules.items():
        predicted = (test >= threshold).astype(int)
        y = splits.test.labels
        rows[name] = {"threshold": round(threshold, 4), "test_accuracy": round(float(np.mean(predicted == y)), 4),
                      "test_sensitivity": round(float(np.mean(predicted[y == 1] == 1)), 4),
                      "test_specificity": round(float(np.mean(predicted[y == 0] == 0)), 4)}
    return {"folder": str(folder), "recorded_threshold": record.get("threshold"), "rules": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", help="mdx train or mdx prune folders (with record.json)")
    args = parser.parse_args()
    figures = {str(folder): measure(folder) for folder in args.folders}
    print(f"{'model':<40} {'rule':<9} {'threshold':>9} {'test acc':>9} {'sens':>6} {'spec':>6}")
    for folder, result in figures.items():
        for name, row in result["rules"].items():
            print(f"{folder[-40:]:<40} {name:<9} {row['threshold']:>9.4f} {row['test_accuracy']:>9.4f} "
                  f"{row['test_sensitivity']:>6.3f} {row['test_specificity']:>6.3f}")
    print(f"threshold_rules: saved {save('threshold_rules', {**context(), 'figures': figures})}")


if __name__ == "__main__":
    main()
