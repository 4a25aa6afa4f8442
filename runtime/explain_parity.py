"""Explanation parity and the shortcut check: does the candidate look where the reference looks, and
does either look at the image border (markers, rulers, burnt-in text) more than at the image?

On a bounded sample (`ExplanationCheck.sample` images, spread over the classes as the data is read),
both models' occlusion maps follow the reference's class of each image. Per image: the Spearman rank
correlation of the two maps and the IoU of their top-10% regions (docs/explain.md). The mean
Spearman is the gate (`min_agreement`); a mean border share above `max_border_share`, over all images
or over the images of any one class, flags a shortcut (a marker may give away one class only).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .configs import JsonConfig
from .decision import Decision
from .errors import UsageError
from .occlusion import Occlusion, border_share, default_occlusion, occlusion_map, spearman, top_iou

Predict = Callable[[np.ndarray], np.ndarray]
DEFAULT_SAMPLE = 16  # with --min-explanation-agreement alone: 2 x 16 x 65 invokes, ~10 s at 128 px
# A map spread evenly puts 36% of its weight in a 10% border; above 1/2 the border outweighs the image.
DEFAULT_MAX_BORDER_SHARE = 0.5


@dataclass(frozen=True)
class ExplanationCheck(JsonConfig):
    """How many images to explain (0: none), the sweep (None: the defaults of docs/explain.md), the gate
    on the mean Spearman correlation (None: measured, not gated) and the border share that flags a shortcut."""

    sample: int = 0
    patch: int | None = None
    stride: int | None = None
    min_agreement: float | None = None
    max_border_share: float = DEFAULT_MAX_BORDER_SHARE

    def __post_init__(self) -> None:
        if isinstance(self.sample, bool) or not isinstance(self.sample, int) or self.sample < 0:
            raise UsageError(f"--explain-sample {self.sample!r} is invalid; expected an integer >= 0 (0: off)")
        if self.min_agreement is not None:
            if not -1.0 <= self.min_agreement <= 1.0:
                raise UsageError(f"--min-explanation-agreement {self.min_agreement} is invalid; expected a rank "
                                 "correlation in [-1, 1], e.g. 0.8")
            if self.sample == 0:
                object.__setattr__(self, "sample", DEFAULT_SAMPLE)
        if not 0.0 <= self.max_border_share <= 1.0:
            raise UsageError(f"--max-border-share {self.max_border_share} is invalid; expected a share in [0, 1]")

    @property
    def enabled(self) -> bool:
        return self.sample > 0

    def occlusion(self, size: int) -> Occlusion:
        default = default_occlusion(size)
        patch = self.patch if self.patch is not None else default.patch
        occlusion = Occlusion(patch=patch, stride=self.stride if self.stride is not None else patch)
        occlusion.check_fits(size, size)
        return occlusion


class SampleKeeper:
    """Passes a stream's chunks through unchanged, keeping the first `per_class` inputs of each class."""

    def __init__(self, sample: int, classes: int) -> None:
        self.per_class = max(1, math.ceil(sample / classes))
        self.sample = sample
        self.inputs: list[np.ndarray] = []
        self.labels: list[int] = []
        self.paths: list[str] = []
        self.counts: dict[int, int] = {}

    def wrap(self, chunks: Iterator[tuple[np.ndarray, np.ndarray, tuple[str, ...]]]):
        for inputs, labels, paths in chunks:
            for i, label in enumerate(int(v) for v in labels):
                if self.counts.get(label, 0) < self.per_class:
                    self.counts[label] = self.counts.get(label, 0) + 1
                    self.inputs.append(np.array(inputs[i]))
                    self.labels.append(label)
                    self.paths.append(paths[i] if i < len(paths) else f"#{len(self.labels) - 1}")
            yield inputs, labels, paths

    def kept(self) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """At most `sample` inputs, taken in turn from each class, in data order."""
        by_class: dict[int, list[int]] = {}
        for i, label in enumerate(self.labels):
            by_class.setdefault(label, []).append(i)
        turns = [by_class[label][rank] for rank in range(self.per_class) for label in sorted(by_class)
                 if rank < len(by_class[label])]
        order = sorted(turns[: self.sample])
        return (np.stack([self.inputs[i] for i in order]), np.asarray([self.labels[i] for i in order]),
                tuple(self.paths[i] for i in order))


def nan_mean(values: list[float]) -> float | None:
    """The mean of the finite values, rounded to 4 decimals; None when there are none (no map had a positive part)."""
    finite = [v for v in values if not math.isnan(v)]
    return None if not finite else round(float(np.mean(finite)), 4)


def map_stats(values: tuple[float, ...] | list[float]) -> dict[str, float]:
    """Mean, median and minimum of per-image agreements (Spearman or top-10% IoU), rounded as reported."""
    return {"mean": round(float(np.mean(values)), 4), "median": round(float(np.median(values)), 4),
            "min": round(float(min(values)), 4)}


def rounded(values: tuple[float, ...] | list[float]) -> list[float | None]:
    """Per-image values for JSON: 4 decimals, NaN (a map with nothing positive) as null."""
    return [None if math.isnan(v) else round(v, 4) for v in values]


@dataclass(frozen=True, eq=False)
class ExplanationParity:
    """Per image: the class followed, Spearman, top-10% IoU and both border shares; and what they add up to."""

    config: ExplanationCheck
    occlusion: Occlusion
    class_names: tuple[str, ...]
    paths: tuple[str, ...]
    labels: tuple[int, ...]
    targets: tuple[int, ...]
    spearman: tuple[float, ...]
    iou: tuple[float, ...]
    candidate_border: tuple[float, ...]
    reference_border: tuple[float, ...]

    @property
    def mean_spearman(self) -> float:
        return float(np.mean(self.spearman))

    @property
    def passed(self) -> bool:
        return self.config.min_agreement is None or self.mean_spearman >= self.config.min_agreement - 1e-9

    def border_by_class(self, shares: tuple[float, ...]) -> dict[str, float | None]:
        """Mean border share of the images of each true class."""
        return {name: nan_mean([s for s, label in zip(shares, self.labels) if label == k])
                for k, name in enumerate(self.class_names)}

    def shortcut_classes(self) -> tuple[str, ...]:
        """The true classes whose images put more than the limit of the candidate's attribution in the border."""
        return tuple(name for name, share in self.border_by_class(self.candidate_border).items()
                     if share is not None and share > self.config.max_border_share)

    @property
    def shortcut(self) -> bool:
        """The candidate's mean border share, over all images or one class's, is above the limit (a model
        reading markers, not anatomy)."""
        share = nan_mean(list(self.candidate_border))
        return (share is not None and share > self.config.max_border_share) or bool(self.shortcut_classes())

    def summary(self) -> str:
        verdict = "failed" if not self.passed else "passed" if self.config.min_agreement is not None else "measured"
        text = (f"explanation agreement {verdict} on {len(self.spearman)} images: map Spearman mean "
                f"{self.mean_spearman:.3f}")
        if not self.passed:
            limit = self.config.min_agreement
            text += f" (limit {limit:g}, missed by {limit - self.mean_spearman:.3g}; --min-explanation-agreement)"
        return text + f", min {min(self.spearman):.3f}, top-10% IoU mean {float(np.mean(self.iou)):.3f}"

    def shortcut_warning(self) -> str | None:
        if not self.shortcut:
            return None
        by_class = self.border_by_class(self.candidate_border)
        classes = ", ".join(f"{name} {by_class[name]:.2f}" for name in self.shortcut_classes())
        return (f"shortcut: {nan_mean(list(self.candidate_border)):.2f} of the candidate's attribution lies in the image "
                f"border (outer 10%{'; above the limit in ' + classes if classes else ''}; limit "
                f"{self.config.max_border_share:g}, an even map gives 0.36); check the images for markers or text "
                "that give the class away")

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed, "summary": self.summary(), "config": self.config.to_dict(),
            "occlusion": {"patch": self.occlusion.patch, "stride": self.occlusion.stride},
            "n": len(self.spearman),
            "spearman": map_stats(self.spearman), "top10_iou": map_stats(self.iou),
            "border_share": {
                "candidate": nan_mean(list(self.candidate_border)), "reference": nan_mean(list(self.reference_border)),
                "candidate_by_class": self.border_by_class(self.candidate_border),
                "reference_by_class": self.border_by_class(self.reference_border),
                "limit": self.config.max_border_share, "shortcut": self.shortcut,
                "shortcut_classes": list(self.shortcut_classes()),
            },
            "images": [{"path": p, "label": self.class_names[y], "class": self.class_names[t], "spearman": round(s, 4),
                        "top10_iou": round(i, 4), "candidate_border_share": cb, "reference_border_share": rb}
                       for p, y, t, s, i, cb, rb in zip(self.paths, self.labels, self.targets, self.spearman, self.iou,
                                                        rounded(self.candidate_border), rounded(self.reference_border))],
        }


def compare_explanations(candidate: Predict, reference: Predict, inputs: np.ndarray, labels: np.ndarray,
                         paths: tuple[str, ...], class_names: tuple[str, ...], decision: Decision,
                         config: ExplanationCheck) -> ExplanationParity:
    """Occlusion maps of both models on `inputs`, following the reference's class of each image.

    Raises:
        UsageError: the patch is larger than the inputs.
    """
    occlusion = config.occlusion(int(inputs.shape[1]))
    targets = decision.classes(np.asarray(reference(inputs)))
    rows: list[tuple[float, float, float, float]] = []
    for image, target in zip(inputs, targets):
        ref_map, _ = occlusion_map(reference, image, int(target), occlusion)
        cand_map, _ = occlusion_map(candidate, image, int(target), occlusion)
        rows.append((spearman(cand_map, ref_map), top_iou(cand_map, ref_map), border_share(cand_map),
                     border_share(ref_map)))
    columns = list(zip(*rows))
    return ExplanationParity(config=config, occlusion=occlusion, class_names=class_names, paths=paths,
                             labels=tuple(int(v) for v in labels), targets=tuple(int(v) for v in targets),
                             spearman=columns[0], iou=columns[1], candidate_border=columns[2],
                             reference_border=columns[3])
