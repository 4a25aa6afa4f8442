"""The representative dataset that calibrates int8 activation ranges.

Drawn from the training split through exactly the training preprocessing (the same decoder, resize
and `Preprocessing.normalize`): calibrating on differently prepared pixels gives ranges that do not
fit the inputs the model will see, and int8 accuracy drops with no error anywhere.

`--calibration-dir` may instead name images from the site where the model will run, as one flat
folder: calibration needs no labels, and int8's error follows the images' distribution, which the
training split may not share (benchmarks/site_calibration.py measures it on the chest X-rays).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mdx import interrupts
from mdx.config import ConfigBase, require
from mdx.errors import DataError
from mdx.quantize.recipes import RepresentativeDataset
from mdx.runtime.errors import InputDataError
from mdx.runtime.images import IMAGE_SUFFIXES, list_images, load_image, non_image_files
from mdx.runtime.manifest import MANIFEST_SUFFIX, manifest_root, read_manifest, split_files
from mdx.runtime.preprocess import Preprocessing

DEFAULT_COUNT = 200


@dataclasses.dataclass(frozen=True)
class CalibrationConfig(ConfigBase):
    """How many images to draw (stratified by class) and the seed that picks them."""

    count: int = DEFAULT_COUNT
    seed: int = 0

    def __post_init__(self) -> None:
        require(
            isinstance(self.count, int) and not isinstance(self.count, bool) and 1 <= self.count <= 100_000,
            f"calibration count {self.count!r} is invalid; expected an integer from 1 to 100000 (default 200)",
        )
        require(
            isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0,
            f"calibration seed {self.seed!r} is invalid; expected a non-negative integer",
        )


@dataclasses.dataclass(frozen=True)
class CalibrationSet:
    """Normalized float32 inputs (N, S, S, 3) with their labels and source files."""

    inputs: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    paths: tuple[str, ...]
    skipped: tuple[str, ...]  # "path: reason" of unreadable files, skipped as training skips them
    folder: str
    requested: int

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def representative_dataset(self) -> RepresentativeDataset:
        """A TFLiteConverter `representative_dataset`: one image per step, batch dimension kept."""
        inputs = self.inputs

        def generate() -> Iterator[list[np.ndarray]]:
            for index in range(inputs.shape[0]):
                # the converter draws these from its own Python loop: a pending signal may stop it here
                interrupts.safe_point()
                yield [inputs[index : index + 1]]

        return generate

    @property
    def labelled(self) -> bool:
        """False for a flat folder of site images, whose labels are all UNLABELLED."""
        return bool(np.all(self.labels != UNLABELLED))

    def to_dict(self) -> dict[str, object]:
        """Record form: where the images came from and how many of each class were used (None: unlabelled)."""
        counts = np.bincount(self.labels, minlength=len(self.class_names)).tolist() if self.labelled else None
        return {
            "folder": self.folder,
            "requested": self.requested,
            "used": len(self),
            "labelled": self.labelled,
            "per_class": dict(zip(self.class_names, counts)) if counts is not None else None,
            "skipped": list(self.skipped),
        }


def stratified_quota(class_sizes: list[int], total: int) -> list[int]:
    """Images per class, proportional to class size, at least one per class when `total` allows.

    Largest-remainder rounding, so the quotas sum to min(total, sum(class_sizes)) exactly.
    """
    available = sum(class_sizes)
    if total >= available:
        return list(class_sizes)
    exact = [size * total / available for size in class_sizes]
    quota = [min(size, max(1, int(share))) if size else 0 for size, share in zip(class_sizes, exact)]
    while sum(quota) > total:  # the minimum of one per class overshot: take from the largest quota
        quota[int(np.argmax(quota))] -= 1
    order = sorted(range(len(class_sizes)), key=lambda i: exact[i] - int(exact[i]), reverse=True)
    while sum(quota) < total:
        for i in order:
            if sum(quota) < total and quota[i] < class_sizes[i]:
                quota[i] += 1
    return quota


_FIX = ("pass --calibration-dir DIR: training images, one sub-folder per class (e.g. data/chest_xray/train), "
        "or one flat folder of images from the site where the model will run")
UNLABELLED = -1


def _flat_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """(images, sub-folders) directly in `folder`, hidden entries aside."""
    entries = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".")]
    images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return images, [p for p in entries if p.is_dir()]


def _draw(
    folder: Path, class_names: tuple[str, ...], count: int, rng: np.random.Generator
) -> tuple[list[Path], np.ndarray, list[int], list[str]]:
    """(paths, labels, chosen indices, skipped non-images): stratified by class, or uniform over a flat folder."""
    if folder.is_file():  # a split manifest: its training rows, never its validation or test ones
        root = manifest_root(folder)
        try:
            files, label_list = split_files(read_manifest(folder, root, check_files=False), "train", root, class_names)
        except InputDataError as exc:
            raise DataError(f"calibration: {exc}") from None
        labels = np.asarray(label_list, dtype=np.int64)
        chosen = _stratified_draw(labels, len(class_names), count, rng)
        return files, labels, chosen, []
    flat, sub_folders = _flat_images(folder)
    if flat and sub_folders:
        raise DataError(f"calibration folder {folder} holds both images and sub-folders "
                        f"({sub_folders[0].name}/); use one flat folder of images or one sub-folder per class")
    if flat:
        skipped = [reason for _, reason in non_image_files(folder.parent, (folder.name,))]  # the folder itself
        chosen = sorted(rng.permutation(len(flat))[:count].tolist())
        return flat, np.full(len(flat), UNLABELLED, dtype=np.int64), chosen, skipped
    try:
        paths, labels, _ = list_images(folder, tuple(class_names))
    except InputDataError as exc:
        raise DataError(f"calibration folder: {exc}") from None
    chosen = _stratified_draw(labels, len(class_names), count, rng)
    return paths, labels, chosen, [reason for _, reason in non_image_files(folder, tuple(class_names))]


def _stratified_draw(labels: np.ndarray, n_classes: int, count: int, rng: np.random.Generator) -> list[int]:
    """Indices of `count` images, each class's share by `stratified_quota`, seeded."""
    chosen: list[int] = []
    sizes = [int(np.sum(labels == k)) for k in range(n_classes)]
    for k, quota in enumerate(stratified_quota(sizes, count)):
        members = np.flatnonzero(labels == k)
        chosen.extend(sorted(rng.permutation(members)[:quota].tolist()))
    return chosen


def sample_calibration(
    folder: Path,
    preprocessing: Preprocessing,
    class_names: tuple[str, ...],
    config: CalibrationConfig = CalibrationConfig(),
) -> CalibrationSet:
    """Draw `config.count` images and normalize them: stratified by class from a folder-per-class tree,
    or uniformly from a flat folder of unlabelled images.

    Only the drawn images are decoded (with `load_image`, the decoder `load_folder` uses), so a
    5,000-image training split costs 200 decodes, not 5,000.

    Raises:
        DataError: the folder is missing, empty, mixes images with sub-folders, its classes differ
            from `class_names`, or no drawn image can be read.
    """
    folder = Path(folder)
    if folder.is_file() and folder.name.endswith(MANIFEST_SUFFIX):
        pass  # a run's split manifest: drawn from its training rows
    elif not folder.is_dir():
        raise DataError(f"calibration folder {folder} not found (int8 variants need representative images); " + _FIX)
    elif not any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*")):
        raise DataError(f"calibration folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); " + _FIX)
    paths, labels, chosen, skipped = _draw(folder, tuple(class_names), config.count, np.random.default_rng(config.seed))
    images = np.empty((len(chosen), preprocessing.size, preprocessing.size, 3), dtype=np.uint8)
    kept: list[int] = []
    for index in chosen:
        try:
            images[len(kept)] = load_image(paths[index], preprocessing.size)
        except InputDataError as exc:
            skipped.append(str(exc))
            continue
        kept.append(index)
    if not kept:
        raise DataError(f"calibration folder {folder}: none of the {len(chosen)} drawn images could be read; " + _FIX)
    return CalibrationSet(
        inputs=preprocessing.normalize(images[: len(kept)]),
        labels=labels[kept],
        class_names=tuple(class_names),
        paths=tuple(str(paths[i]) for i in kept),
        skipped=tuple(skipped),
        folder=str(folder),
        requested=config.count,
    )
