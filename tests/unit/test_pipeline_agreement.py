"""The pipeline table's agreement with FP32 decides as its accuracy does: `p >= threshold`, not argmax."""

from __future__ import annotations

import numpy as np

from mdx.pipeline import agreement

# int8 softmax outputs are multiples of 1/256: (0.5, 0.5) is a real output, where FP32 says 0.49 / 0.51.
INT8 = np.array([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
FP32 = np.array([[0.49, 0.51], [0.48, 0.52], [0.88, 0.12], [0.25, 0.75]])


def test_agreement_exact_int8_tie_counts_as_positive_like_the_accuracy() -> None:
    assert agreement(INT8, FP32, 0.5) == 1.0  # both ties are >= 0.5, as FP32's 0.51 and 0.52 are
    assert float(np.mean(INT8.argmax(1) == FP32.argmax(1))) == 0.5  # what argmax made of the same rows


def test_agreement_at_recorded_threshold_not_at_half() -> None:
    # at 0.515 the first FP32 row (0.51) is negative and the int8 tie too; the second FP32 row (0.52) is not
    assert agreement(INT8, FP32, 0.515) == 0.75


def test_agreement_three_classes_uses_argmax() -> None:
    three = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    assert agreement(three, three[::-1], None) == 0.0 and agreement(three, three, None) == 1.0
