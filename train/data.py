"""Training data: a folder-per-class tree decoded once (by the runtime's own decoder, so training,
calibration and on-device evaluation see identical pixels), a seeded stratified validation split,
and tf.data pipelines."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mdx.errors import DataError
from mdx.runtime.images import ImageSet, list_classes, load_files, load_folder
from mdx.runtime.manifest import ManifestRow, read_manifest, resolve, rows_for, split_files


@dataclass(frozen=True)
class Splits:
    train: ImageSet
    val: ImageSet
    test: ImageSet | None
    class_names: tuple[str, ...]
    train_dir: Path
    val_dir: Path | None
    test_dir: Path | None
    # each image's path -> its group (patient joined with near-duplicates), as the split kept it whole
    groups: dict[str, str] = field(default_factory=dict)


def _subset(data: ImageSet, index: np.ndarray) -> ImageSet:
    return ImageSet(
        images=data.images[index],
        labels=data.labels[index],
        class_names=data.class_names,
        paths=tuple(data.paths[i] for i in index),
    )


def patient_groups(paths: tuple[str, ...], pattern: str) -> list[str]:
    """The group (patient) of each file: the first match of `pattern` in its name, else the file itself."""
    if not pattern:
        return list(paths)
    regex = re.compile(pattern)
    return [found.group(0) if (found := regex.search(Path(path).name)) else path for path in paths]


def split_groups(sets: Sequence[ImageSet | None], pattern: str, duplicate_distance: int) -> list[list[str]]:
    """Each image's group, per set: its patient (`pattern`), joined with every near-duplicate within
    `duplicate_distance` bits of pHash across all the sets (-1: patients only)."""
    present = [data for data in sets if data is not None]
    names = [name for data in present for name in patient_groups(data.paths, pattern)]
    if duplicate_distance >= 0 and names:
        from mdx.train.near_duplicates import merge_groups, near_pairs, phash_bits

        bits = np.concatenate([phash_bits(data.images) for data in present])
        names = merge_groups(names, near_pairs(bits, duplicate_distance))
    result: list[list[str]] = []
    offset = 0
    for data in sets:
        size = 0 if data is None else len(data)
        result.append(names[offset:offset + size])
        offset += size
    return result


def stratified_split(data: ImageSet, fraction: float, seed: int, group_pattern: str = "",
                     warn: Callable[[str], None] | None = None,
                     groups: Sequence[str] | None = None) -> tuple[ImageSet, ImageSet]:
    """Split off `fraction` of every class (at least one image each), seeded, whole groups at a time.

    Images whose names share a `group_pattern` match (one patient's X-rays) all land on one side:
    a patient seen in training and again in validation makes validation look better than test. A
    class that cannot be split that way (one patient holds most of a tiny subset) is split image by
    image, with a warning. `groups` (one per image, from `split_groups`) replaces the pattern's.
    """
    rng = np.random.default_rng(seed)
    groups = np.asarray(patient_groups(data.paths, group_pattern) if groups is None else list(groups), dtype=object)
    held: list[int] = []
    for label in range(len(data.class_names)):
        members = np.flatnonzero(data.labels == label)
        if members.size < 2:
            where = Path(data.paths[members[0]]).parent if members.size else data.class_names[label]
            raise DataError(
                f"{where}: class {data.class_names[label]!r} has {members.size} image(s); at least 2 are needed to carve "
                "a validation split: add images, or give a val/ folder"
            )
        take = max(1, round(members.size * fraction))
        chosen: list[int] = []
        # whole groups, in seeded order, skipping any that would overshoot twice the quota or leave
        # the class without training images
        for name in rng.permutation(np.asarray(sorted(set(groups[members])), dtype=object)):
            if len(chosen) >= take:
                break
            group = members[groups[members] == name]
            if len(chosen) + group.size <= min(2 * take, members.size - 1):
                chosen.extend(group.tolist())
        if not chosen:
            if warn is not None:
                warn(f"class {data.class_names[label]!r}: its {members.size} images cannot be split by patient under "
                     f"val_group_pattern {group_pattern!r} (one patient holds too many); split image by image")
            chosen = rng.choice(members, size=take, replace=False).tolist()
        held.extend(chosen)
    held_index = np.sort(np.asarray(held))
    kept_index = np.setdiff1d(np.arange(len(data)), held_index)
    return _subset(data, kept_index), _subset(data, held_index)


def cap_per_class(data: ImageSet, limit: int, seed: int) -> ImageSet:
    """Keep at most `limit` images per class (0 = all), seeded: for quick runs and tests."""
    if limit <= 0:
        return data
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for label in range(len(data.class_names)):
        members = np.flatnonzero(data.labels == label)
        keep.extend(rng.choice(members, size=min(limit, members.size), replace=False).tolist())
    return _subset(data, np.sort(np.asarray(keep)))


# How data sets spell their splits (any case): Kaggle's "train/test", the brain-MRI set's "Training/Testing",
# Keras' "validation". One folder per split; two spellings of one split in one DATA are refused.
SPLIT_NAMES = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}


def split_folders(data_dir: Path) -> dict[str, Path]:
    """{"train": DATA/Training, "val": ..., "test": ...} for the split folders DATA holds, by SPLIT_NAMES.

    Raises:
        DataError: DATA is missing, or two folders name the same split (e.g. train/ and Training/).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data folder not found; expected DATA/train/<class>/ (and DATA/test/<class>/)")
    found: dict[str, list[Path]] = {}
    for child in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        for split, names in SPLIT_NAMES.items():
            if child.name.lower() in names:
                found.setdefault(split, []).append(child)
    for split, folders in found.items():
        if len(folders) > 1:
            raise DataError(f"{data_dir}: {[f.name for f in folders]} all name the {split} split; keep one, or rename "
                            "the others")
    return {split: folders[0] for split, folders in found.items()}


def load_splits(
    data_dir: Path,
    *,
    size: int,
    val_fraction: float,
    seed: int,
    max_images_per_class: int = 0,
    group_pattern: str = "",
    on_skip: Callable[[Path, str], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    test_fraction: float = 0.2,
    split_manifest: Path | None = None,
    duplicate_distance: int = -1,
) -> Splits:
    """Decode `data_dir/train` (and `val`, `test` when present; any spelling of SPLIT_NAMES) with one class order.

    A DATA of class folders and no split folders is split here: test, then validation, each stratified,
    seeded and whole groups at a time. `split_manifest` reuses the split an earlier run recorded.

    Raises:
        DataError: no train/ folder, fewer than two classes, or class folders that differ between splits.
    """
    data_dir = Path(data_dir)
    folders = split_folders(data_dir)
    if split_manifest is not None:
        return _splits_from_manifest(data_dir, Path(split_manifest), size, on_skip)
    if not folders and _holds_class_folders(data_dir):
        return _carve_all(data_dir, size=size, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                          max_images_per_class=max_images_per_class, group_pattern=group_pattern, on_skip=on_skip,
                          on_warning=on_warning, duplicate_distance=duplicate_distance)
    if "train" not in folders:
        raise DataError(f"{data_dir}: no train/ folder; expected DATA/train/<class>/*.jpg, one sub-folder per class "
                        "(Training/ and any case are accepted too)")
    train_dir = folders["train"]
    classes = list_classes(train_dir)
    optional = {name: folders[name] for name in ("val", "test") if name in folders}
    for folder in optional.values():
        # compared before list_classes, which would only count a test/ left with one class folder
        present = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
        if present != classes:
            missing = [name for name in classes if name not in present]
            fix = "every split needs the same class folders" + (
                f": add {folder / missing[0]}/ with images, or remove that class from {train_dir.name}/" if missing else "")
            raise DataError(f"{folder}: class folders {list(present)} differ from {train_dir.name}/'s {list(classes)}; {fix}")
        list_classes(folder)  # refuses an empty class folder
    train = cap_per_class(load_folder(train_dir, size, classes, on_skip=on_skip), max_images_per_class, seed)
    val = test = None
    if "val" in optional:
        val = cap_per_class(load_folder(optional["val"], size, classes, on_skip=on_skip), max_images_per_class, seed)
    if "test" in optional:
        test = cap_per_class(load_folder(optional["test"], size, classes, on_skip=on_skip), max_images_per_class, seed)
    train_groups, val_groups, test_groups = split_groups([train, val, test], group_pattern, duplicate_distance)
    groups = dict(zip(train.paths, train_groups)) | dict(zip(val.paths if val else (), val_groups)) \
        | dict(zip(test.paths if test else (), test_groups))
    if val is None:
        train, val = stratified_split(train, val_fraction, seed, group_pattern, warn=on_warning, groups=train_groups)
    return Splits(train, val, test, classes, train_dir, optional.get("val"), optional.get("test"), groups)


def _holds_class_folders(data_dir: Path) -> bool:
    return any(p.is_dir() and not p.name.startswith(".") for p in data_dir.iterdir())


def _carve_all(data_dir: Path, *, size: int, val_fraction: float, test_fraction: float, seed: int,
               max_images_per_class: int, group_pattern: str, on_skip, on_warning, duplicate_distance: int) -> Splits:
    """DATA/<class>/ with no split: test first, then validation from the rest, by the same grouping rule."""
    everything = cap_per_class(load_folder(data_dir, size, on_skip=on_skip), max_images_per_class, seed)
    groups = dict(zip(everything.paths, split_groups([everything], group_pattern, duplicate_distance)[0]))
    rest, test = stratified_split(everything, test_fraction, seed, group_pattern, warn=on_warning,
                                  groups=[groups[p] for p in everything.paths])
    # validation's share of what is left, so that val_fraction stays a share of the whole
    train, val = stratified_split(rest, min(0.49, val_fraction / (1.0 - test_fraction)), seed + 1, group_pattern,
                                  warn=on_warning, groups=[groups[p] for p in rest.paths])
    return Splits(train, val, test, everything.class_names, data_dir, None, None, groups)


def _splits_from_manifest(data_dir: Path, manifest: Path, size: int, on_skip) -> Splits:
    """The split an earlier run recorded, each file checked against its sha256."""
    rows = read_manifest(manifest, data_dir)
    classes = tuple(sorted({row.label for row in rows}))
    sets = {}
    for split in ("train", "val", "test"):
        files, labels = split_files(rows, split, data_dir, classes)
        sets[split] = load_files(files, labels, classes, size, on_skip=on_skip, where=str(manifest)) if files else None
    if sets["train"] is None or sets["val"] is None:
        raise DataError(f"{manifest}: has no {'train' if sets['train'] is None else 'val'} rows; a split manifest "
                        "for training names train and val images")
    groups = {str(resolve(row, data_dir)): row.group for row in rows}
    return Splits(sets["train"], sets["val"], sets["test"], classes, data_dir, None, None, groups)


def manifest_rows(splits: Splits, group_pattern: str, root: Path) -> list[ManifestRow]:
    """One row per image of every split (path relative to `root`, sha256, class, split, group): the group
    the split kept whole, else the patient by `group_pattern`."""
    rows: list[ManifestRow] = []
    for name, data in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if data is not None:
            files = [Path(p) for p in data.paths]
            patients = patient_groups(data.paths, group_pattern)
            groups = [splits.groups.get(p, patient) for p, patient in zip(data.paths, patients)]
            rows += rows_for(name, files, data.labels.tolist(), splits.class_names, groups, root)
    return rows


def class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    """Inverse-frequency weights that average to 1 over the samples (the chest X-rays are 1:3)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return {i: float(len(labels) / (n_classes * c)) if c else 0.0 for i, c in enumerate(counts)}
