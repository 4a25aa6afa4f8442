"""The int8 output correction's fit: one softmax slope and per-class offsets, from centered logits."""

from __future__ import annotations

import numpy as np

from mdx.quantize.output_offset import fit_logit_map


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_fit_recovers_a_shrunk_and_shifted_copy_of_the_logits() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 4, (500, 3))
    quantized = 0.9 * reference + np.array([0.3, -0.1, 0.5]) + 7.0 + rng.normal(0, 0.01, (500, 3))  # +7: softmax ignores it
    slope, offset = fit_logit_map(reference, quantized)
    assert abs(slope - 1 / 0.9) < 0.01
    np.testing.assert_allclose(_softmax(slope * quantized + offset), _softmax(reference), atol=0.02)


def test_fit_of_identical_logits_is_the_identity() -> None:
    reference = np.random.default_rng(1).normal(0, 3, (50, 2))
    slope, offset = fit_logit_map(reference, reference + 2.5)
    assert abs(slope - 1) < 1e-12 and np.allclose(offset, 0)


def test_constant_quantized_logits_leave_the_slope_at_one() -> None:
    slope, _ = fit_logit_map(np.random.default_rng(2).normal(0, 1, (10, 2)), np.zeros((10, 2)))
    assert slope == 1.0
