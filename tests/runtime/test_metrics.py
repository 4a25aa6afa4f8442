"""Metrics against values computed by hand (the comments show the counts)."""

from __future__ import annotations

import numpy as np
import pytest

import mdx.runtime.metrics as metrics_module
from mdx.runtime.errors import InputDataError, UsageError
from mdx.runtime.metrics import classification_metrics, predict_classes, roc_auc, roc_curve, youden_threshold

# Binary case. P(PNEUMONIA) per sample; at threshold 0.5 the predictions are [0,1,0,1,1,0,1,0]:
# TP = samples 3,4,6 (3); FN = sample 5 (1); FP = sample 1 (1); TN = samples 0,2,7 (3).
BIN_LABELS = np.array([0, 0, 0, 1, 1, 1, 1, 0])
BIN_SCORES = np.array([0.1, 0.6, 0.4, 0.8, 0.7, 0.3, 0.9, 0.2])
BIN_PROBS = np.stack([1 - BIN_SCORES, BIN_SCORES], axis=1)
NAMES = ("NORMAL", "PNEUMONIA")

# Three classes: argmax predictions [0,1,1,1,2,0] for labels [0,0,1,1,2,2].
MC_LABELS = np.array([0, 0, 1, 1, 2, 2])
MC_PROBS = np.array([
    [0.6, 0.3, 0.1],
    [0.3, 0.5, 0.2],
    [0.2, 0.7, 0.1],
    [0.1, 0.8, 0.1],
    [0.1, 0.2, 0.7],
    [0.5, 0.1, 0.4],
])
MC_NAMES = ("BACTERIAL", "NORMAL", "VIRAL")


def _values(metrics: dict) -> dict[str, float | None]:
    return {k: metrics[k]["value"] for k in ("accuracy", "precision", "sensitivity", "specificity", "f1", "auc")}


def test_classification_metrics_binary_default_threshold_hand_values() -> None:
    m = classification_metrics(BIN_LABELS, BIN_PROBS, NAMES, n_boot=0)
    # AUC: positives 0.8, 0.7, 0.9 beat all 4 negatives (12 pairs); 0.3 beats 0.1 and 0.2 (2) -> 14 / 16
    assert _values(m) == pytest.approx(
        {"accuracy": 0.75, "precision": 0.75, "sensitivity": 0.75, "specificity": 0.75, "f1": 0.75, "auc": 0.875}
    )
    assert m["confusion_matrix"] == [[3, 1], [1, 3]]
    assert (m["n"], m["threshold"], m["positive_class"], m["average"]) == (8, 0.5, "PNEUMONIA", "binary")
    assert m["accuracy"]["ci95"] is None


def test_classification_metrics_binary_custom_threshold_hand_values() -> None:
    # threshold 0.75: only 0.8 and 0.9 positive -> TP 2, FN 2, FP 0, TN 4; F1 = 2*2 / (2*2 + 0 + 2)
    m = classification_metrics(BIN_LABELS, BIN_PROBS, NAMES, threshold=0.75, n_boot=0)
    assert _values(m) == pytest.approx(
        {"accuracy": 0.75, "precision": 1.0, "sensitivity": 0.5, "specificity": 1.0, "f1": 2 / 3, "auc": 0.875}
    )
    assert m["confusion_matrix"] == [[4, 0], [2, 2]]


def test_classification_metrics_positive_index_zero_swaps_roles() -> None:
    # NORMAL positive: P(NORMAL) >= 0.5 for samples 0,2,5,7 -> TP 3 (0,2,7), FP 1 (5), FN 1 (1), TN 3
    m = classification_metrics(BIN_LABELS, BIN_PROBS, NAMES, positive_index=0, n_boot=0)
    assert m["positive_class"] == "NORMAL"
    assert _values(m) == pytest.approx(
        {"accuracy": 0.75, "precision": 0.75, "sensitivity": 0.75, "specificity": 0.75, "f1": 0.75, "auc": 0.875}
    )


def test_classification_metrics_multiclass_macro_and_per_class_hand_values() -> None:
    m = classification_metrics(MC_LABELS, MC_PROBS, MC_NAMES, n_boot=0)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    per = {c: {k: v["value"] for k, v in m["per_class"][c].items()} for c in MC_NAMES}
    # BACTERIAL: TP1 FN1 FP1 TN3; NORMAL: TP2 FN0 FP1 TN3; VIRAL: TP1 FN1 FP0 TN4
    assert per["BACTERIAL"] == pytest.approx({"precision": 0.5, "sensitivity": 0.5, "specificity": 0.75, "f1": 0.5, "auc": 0.875})
    assert per["NORMAL"] == pytest.approx({"precision": 2 / 3, "sensitivity": 1.0, "specificity": 0.75, "f1": 0.8, "auc": 1.0})
    assert per["VIRAL"] == pytest.approx({"precision": 1.0, "sensitivity": 0.5, "specificity": 1.0, "f1": 2 / 3, "auc": 1.0})
    assert _values(m) == pytest.approx({
        "accuracy": 4 / 6,
        "precision": (0.5 + 2 / 3 + 1.0) / 3,
        "sensitivity": (0.5 + 1.0 + 0.5) / 3,
        "specificity": (0.75 + 0.75 + 1.0) / 3,
        "f1": (0.5 + 0.8 + 2 / 3) / 3,
        "auc": (0.875 + 1.0 + 1.0) / 3,
    })
    assert (m["average"], m["threshold"], m["positive_class"]) == ("macro", None, None)


def test_classification_metrics_bootstrap_ci_matches_normal_approximation() -> None:
    # 300 of 400 right: the bootstrap CI of accuracy ~ 0.75 +- 1.96 * sqrt(0.75 * 0.25 / 400) = [0.7076, 0.7924]
    labels = np.array([0, 1] * 200)
    right = np.arange(400) % 4 != 0
    predicted = np.where(right, labels, 1 - labels)
    probs = np.stack([1.0 - predicted, predicted.astype(float)], axis=1)
    m = classification_metrics(labels, probs, NAMES, n_boot=2000, seed=1)
    lo, hi = m["accuracy"]["ci95"]
    assert m["accuracy"]["value"] == 0.75
    assert lo == pytest.approx(0.7076, abs=0.01) and hi == pytest.approx(0.7924, abs=0.01)
    assert m["bootstrap"] == {"n_boot": 2000, "seed": 1, "method": "percentile"}


def test_classification_metrics_same_seed_same_ci_each_ci_brackets_value() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    scores = np.clip(labels * 0.3 + rng.normal(0.35, 0.25, 200), 0, 1)
    probs = np.stack([1 - scores, scores], axis=1)
    first = classification_metrics(labels, probs, NAMES, n_boot=300, seed=7)
    assert first == classification_metrics(labels, probs, NAMES, n_boot=300, seed=7)
    for name in ("accuracy", "precision", "sensitivity", "specificity", "f1", "auc"):
        lo, hi = first[name]["ci95"]
        assert lo <= first[name]["value"] <= hi


def test_classification_metrics_undefined_ratios_are_none() -> None:
    # nothing predicted positive: precision 0/0; only negatives present: sensitivity and AUC undefined
    probs = np.array([[0.9, 0.1], [0.8, 0.2]])
    m = classification_metrics([0, 0], probs, NAMES, n_boot=50)
    assert m["precision"]["value"] is None and m["sensitivity"]["value"] is None and m["auc"]["value"] is None
    assert m["precision"]["ci95"] is None
    assert m["specificity"]["value"] == 1.0 and m["accuracy"]["value"] == 1.0


def test_roc_auc_ties_count_half() -> None:
    # positives 0.5 (ties one negative 0.5 -> 0.5, beats 0.2 -> 1) and 0.8 (beats both -> 2): 3.5 / 4
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.8]) == pytest.approx(0.875)
    assert roc_auc([1, 1, 0, 0], [0.3, 0.3, 0.3, 0.3]) == 0.5


def test_roc_auc_equals_pairwise_count_on_random_scores_with_ties() -> None:
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300), 1)  # many ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert roc_auc(labels, scores) == pytest.approx(pairwise, abs=1e-12)
    probs = np.stack([1 - scores, scores], axis=1)
    assert classification_metrics(labels, probs, NAMES, n_boot=0)["auc"]["value"] == pytest.approx(pairwise, abs=1e-12)


def test_roc_auc_one_class_only_is_nan() -> None:
    assert np.isnan(roc_auc([1, 1], [0.2, 0.9]))


def test_roc_curve_hand_values() -> None:
    fpr, tpr, thresholds = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.8, 0.4, 0.35, 0.1])


def test_roc_curve_one_class_refused() -> None:
    with pytest.raises(InputDataError, match=r"ROC needs both classes; got 2 positive and 0 negative samples"):
        roc_curve([1, 1], [0.3, 0.4])


def test_youden_threshold_hand_values() -> None:
    # perfectly separated (J = 1, standard error 0): 0.5 separates too, so the default stands
    assert youden_threshold([0, 0, 1, 1], [0.1, 0.2, 0.6, 0.9]) == 0.5
    # ... and when 0.5 does not separate, the separating threshold nearest 0.5
    assert youden_threshold([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.9]) == 0.3
    assert youden_threshold([0, 0, 1, 1], [0.6, 0.7, 0.8, 0.9], default=0.5) == 0.8


def test_youden_threshold_one_standard_error_rule() -> None:
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(400, int), np.ones(400, int)]
    # near-separable validation, as the chest X-rays' (a few of each class on the wrong side): J is flat
    # across the gap, its argmax an arbitrary end of it; the data cannot move the threshold off 0.5
    flat = np.r_[rng.uniform(0.0, 0.2, 397), [0.95] * 3, rng.uniform(0.6, 1.0, 397), [0.05] * 3]
    assert youden_threshold(labels, flat) == 0.5
    # strong evidence: every positive scores 0.2-0.3 and every negative below 0.2; 0.5 would miss them all
    shifted = np.r_[rng.uniform(0.0, 0.19, 400), rng.uniform(0.2, 0.3, 400)]
    chosen = youden_threshold(labels, shifted)
    assert chosen == shifted[400:].min()  # the separating threshold nearest 0.5


def test_predict_classes_threshold_for_binary_argmax_otherwise() -> None:
    np.testing.assert_array_equal(predict_classes(BIN_PROBS, 0.75), [0, 0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(predict_classes(MC_PROBS), [0, 1, 1, 1, 2, 0])


def test_classification_metrics_bad_inputs_refused() -> None:
    with pytest.raises(InputDataError, match=r"probabilities have shape \(8, 2\); expected \(N, 3\) for classes"):
        classification_metrics(BIN_LABELS, BIN_PROBS, MC_NAMES)
    with pytest.raises(InputDataError, match=r"labels have shape \(3,\); expected \(8,\), one per row"):
        classification_metrics([0, 1, 0], BIN_PROBS, NAMES)
    with pytest.raises(InputDataError, match=r"labels must be class indices 0\.\.1; got values \[0, 2\]"):
        classification_metrics([0, 2, 0, 0, 0, 0, 0, 0], BIN_PROBS, NAMES)
    with pytest.raises(InputDataError, match=r"probabilities contain NaN or infinite values"):
        classification_metrics([0], [[np.nan, 0.5]], NAMES)
    with pytest.raises(InputDataError, match=r"no samples: metrics need at least one labelled sample"):
        classification_metrics(np.zeros(0, int), np.zeros((0, 2)), NAMES)


def test_classification_metrics_bad_options_refused() -> None:
    with pytest.raises(UsageError, match=r"threshold and positive_index apply to 2 classes only; this model has 3"):
        classification_metrics(MC_LABELS, MC_PROBS, MC_NAMES, threshold=0.5)
    with pytest.raises(UsageError, match=r"threshold=1\.5 is invalid; expected a probability in \[0, 1\]"):
        classification_metrics(BIN_LABELS, BIN_PROBS, NAMES, threshold=1.5)
    with pytest.raises(UsageError, match=r"positive_index=2 is invalid; expected 0 or 1"):
        classification_metrics(BIN_LABELS, BIN_PROBS, NAMES, positive_index=2)
    with pytest.raises(UsageError, match=r"n_boot=-1 is invalid; expected an integer >= 0"):
        classification_metrics(BIN_LABELS, BIN_PROBS, NAMES, n_boot=-1)
    with pytest.raises(UsageError, match=r"class_names \['only'\] must name at least 2 classes"):
        classification_metrics([0], [[1.0]], ["only"])


def test_classification_metrics_bootstrap_same_whatever_the_chunk_of_resamples(monkeypatch) -> None:
    rng = np.random.default_rng(4)
    labels, scores = rng.integers(0, 2, 501), rng.random(501)
    probs = np.stack([1 - scores, scores], axis=1)
    whole = classification_metrics(labels, probs, NAMES, n_boot=300, seed=7)
    monkeypatch.setattr(metrics_module, "_MAX_BOOT_CELLS", 501 * 7)  # 43 chunks of 7 resamples, a short last one
    assert classification_metrics(labels, probs, NAMES, n_boot=300, seed=7) == whole
