"""Occlusion sensitivity and the comparison of two maps: small pure numpy functions, no interpreter.

Mirrored line for line by the web page's mdx/web/occlusion.js (tests/web/test_web_heatmap.py compares
the two); docs/explain.md states the exact algorithm, and a change here must change both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import UsageError

Predict = Callable[[np.ndarray], np.ndarray]  # float32 inputs (N, H, W, C) -> probabilities (N, classes)

BORDER_FRACTION = 0.1  # "the border": the outer 10% of each side, where markers and burnt-in text sit
TOP_FRACTION = 0.1  # the top 10% of pixels compared by `top_iou`


@dataclass(frozen=True)
class Occlusion:
    """One occlusion sweep: a `patch` x `patch` square moved by `stride` pixels, filled with `fill`.

    `fill` is in model-input units (after preprocessing): 0.0 is the preprocessing mean, a grey for
    the usual [-1, 1] models; a tuple gives one value per channel. `batch` occluded copies go to the model per call.
    """

    patch: int
    stride: int
    fill: float | tuple[float, ...] = 0.0  # one value, or one per channel
    batch: int = 32

    def __post_init__(self) -> None:
        for name in ("patch", "stride", "batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"occlusion {name}={value!r} is invalid; expected a positive integer")
        if self.stride > self.patch:
            raise UsageError(f"occlusion stride {self.stride} exceeds the patch {self.patch}; pixels between patches "
                             "would never be occluded (use a stride <= the patch)")
        if not np.isfinite(np.asarray(self.fill, dtype=np.float64)).all():
            raise UsageError(f"occlusion fill {self.fill!r} is invalid; expected a finite number")

    def check_fits(self, height: int, width: int) -> None:
        """Raises UsageError when the patch is larger than the image."""
        if self.patch > min(height, width):
            raise UsageError(f"occlusion patch {self.patch} px is larger than the {height}x{width} input; "
                             f"pass a patch of at most {min(height, width)}")


def default_occlusion(size: int, fill: float = 0.0) -> Occlusion:
    """Side-by-side patches of a seventh of the input side: 7 x 7 positions (8 x 8 when the side is no
    multiple of 7), so a 224 px int8 MobileNetV2 is explained in 50 invokes (benchmarks/explain_parity.py)."""
    patch = max(1, size // 7)
    return Occlusion(patch=patch, stride=patch, fill=fill)


def positions(length: int, patch: int, stride: int) -> list[int]:
    """Patch starts along one axis: 0, stride, 2*stride, ... and `length - patch` last, so the edge is covered."""
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def occlusion_map(predict: Predict, image: np.ndarray, target: int, occlusion: Occlusion) -> tuple[np.ndarray, float]:
    """How much the probability of class `target` drops when each pixel is occluded.

    Each patch position gets drop = p(image) - p(occluded image); a pixel's value is the mean drop of
    the patches that cover it. Positive: the pixel supports the class; negative: it argues against it.

    Args:
        predict: inputs (N, H, W, C) -> probabilities (N, classes).
        image: one preprocessed input (H, W, C) float32.
        target: the class index whose probability is followed.
        occlusion: patch, stride, fill and batch.

    Returns:
        (map (H, W) float32 in probability units, p(target) of the unoccluded image)

    Raises:
        UsageError: the patch is larger than the image, or `target` is not a class of the model.
    """
    image = np.asarray(image, dtype=np.float32)
    height, width = image.shape[:2]
    occlusion.check_fits(height, width)
    base_probs = np.asarray(predict(image[None]))[0]
    if not 0 <= target < len(base_probs):
        raise UsageError(f"class index {target} is not one of the model's {len(base_probs)} classes")
    base = float(base_probs[target])
    corners = [(y, x) for y in positions(height, occlusion.patch, occlusion.stride)
               for x in positions(width, occlusion.patch, occlusion.stride)]
    total = np.zeros((height, width), dtype=np.float64)
    count = np.zeros((height, width), dtype=np.float64)
    p = occlusion.patch
    for start in range(0, len(corners), occlusion.batch):
        chunk = corners[start : start + occlusion.batch]
        copies = np.repeat(image[None], len(chunk), axis=0)
        for i, (y, x) in enumerate(chunk):
            copies[i, y : y + p, x : x + p] = occlusion.fill
        drops = base - np.asarray(predict(copies))[:, target]
        for (y, x), drop in zip(chunk, drops):
            total[y : y + p, x : x + p] += drop
            count[y : y + p, x : x + p] += 1.0
    return (total / count).astype(np.float32), base


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank (as scipy.stats.rankdata's "average")."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse.reshape(-1)]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps' pixels; a constant map correlates 1.0 with an equal one, else 0.0."""
    ra, rb = _ranks(np.ravel(a)), _ranks(np.ravel(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    if denominator == 0.0:
        return 1.0 if np.array_equal(np.ravel(a), np.ravel(b)) else 0.0
    return float((ra * rb).sum() / denominator)


def top_mask(heatmap: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    """The ceil(fraction * pixels) highest pixels (ties to the earlier pixel in row-major order), as a bool map."""
    flat = np.ravel(heatmap)
    k = max(1, int(np.ceil(fraction * flat.size)))
    chosen = np.argsort(-flat, kind="stable")[:k]
    mask = np.zeros(flat.size, dtype=bool)
    mask[chosen] = True
    return mask.reshape(np.shape(heatmap))


def top_iou(a: np.ndarray, b: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """Intersection over union of the two maps' top-`fraction` regions."""
    ma, mb = top_mask(a, fraction), top_mask(b, fraction)
    return float((ma & mb).sum() / (ma | mb).sum())


def border_mask(height: int, width: int, fraction: float = BORDER_FRACTION) -> np.ndarray:
    """True on the outer `fraction` of each side: round(fraction * side) rows and columns, at least one."""
    by, bx = max(1, round(fraction * height)), max(1, round(fraction * width))
    mask = np.ones((height, width), dtype=bool)
    mask[by : height - by, bx : width - bx] = False
    return mask


def border_share(heatmap: np.ndarray, fraction: float = BORDER_FRACTION) -> float:
    """Share of the positive attribution that falls in the border; NaN when nothing supports the class.

    A map spread evenly scores the border's share of the area (0.36 for a 10% border).
    """
    positive = np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, None)
    total = float(positive.sum())
    if total == 0.0:
        return float("nan")
    return float(positive[border_mask(*positive.shape, fraction)].sum() / total)
