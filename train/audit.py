"""`mdx audit DATA`: what a data folder holds before anything trains on it, without TensorFlow.

Per class and split: counts, unreadable files, image sizes, aspect ratios, modes and formats.
Near-duplicates within a split (the same image twice) and across splits (leakage: test looks better
than a new patient would). Shortcut warnings: a property that is not the diagnosis (original size,
aspect ratio, mode, format, file size, brightness of the image or of its corners, where markers sit)
that predicts the class far above chance (train/shortcuts.py).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from mdx.errors import ConfigError, DataError
from mdx.runtime.images import class_files, non_image_files
from mdx.train.data import split_folders
from mdx.train.label_issues import LabelIssue, label_issues
from mdx.train.near_duplicates import near_pairs_with_distance
from mdx.train.shortcuts import NUMERIC_PROPERTIES, Shortcut, shortcuts

CORNER_SHARE = 0.1  # each corner patch is this share of the side: where L/R markers and text sit
PARALLEL_FROM = 400  # images: below it, starting worker processes costs more than it saves
ALL = "all"  # the split name of a DATA/<class>/ folder that has no split folders


@dataclass(frozen=True)
class AuditConfig:
    """How far two pHashes may differ and still count as one image; how strong a shortcut must be to warn."""

    duplicate_distance: int = 2
    shortcut_margin: float = 0.5  # warn at chance + margin x (1 - chance): 0.75 for two classes, 0.625 for four
    max_pairs_listed: int = 50
    seed: int = 0
    labels_run: str = ""  # a run whose FP32 model's test probabilities go to cleanlab ("" = skip)

    def __post_init__(self) -> None:
        if self.duplicate_distance < -1 or self.duplicate_distance > 64:
            raise ConfigError(f"--duplicate-distance {self.duplicate_distance} is out of range; use 0-64, or -1 for off")
        if not 0.0 < self.shortcut_margin < 1.0:
            raise ConfigError(f"shortcut_margin {self.shortcut_margin} is out of range; expected 0 < margin < 1")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AuditConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown audit key(s) {unknown}; valid keys: {sorted(known)}")
        return cls(**values)


@dataclass(frozen=True)
class ImageFacts:
    """What one file is, read with Pillow at its own size (nothing resized except for the hash)."""

    path: str
    split: str
    label: str
    format: str
    mode: str
    width: int
    height: int
    file_bytes: int
    brightness: float  # mean grey level, 0-255 (16-bit images scaled down)
    corner_highlights: float  # the largest share of a corner patch among the image's brightest 1% of pixels
    phash: str = ""  # the 64-bit perceptual hash, hex ("" when near-duplicates are off)


@dataclass(frozen=True)
class NearPair:
    first: str
    second: str
    distance: int
    splits: tuple[str, str]


@dataclass(frozen=True)
class SplitShift:
    """One class's property distributed differently in train and test: the test images come from elsewhere."""

    label: str
    property: str
    statistic: float  # two-sample Kolmogorov-Smirnov distance, 0 (same) to 1 (disjoint)
    train: dict[str, float]
    test: dict[str, float]
    flagged: bool

    def said(self) -> str:
        return (f"{NUMERIC_PROPERTIES[self.property]} (train {self.train['min']:g}-{self.train['max']:g}, median "
                f"{self.train['median']:g}; test {self.test['min']:g}-{self.test['max']:g}, median "
                f"{self.test['median']:g}; KS {self.statistic:.2f})")


def shift_warnings(shifts: list[SplitShift]) -> list[str]:
    """One line per class whose test images differ from its train images in one property or more."""
    by_class: dict[str, list[SplitShift]] = {}
    for shift in shifts:
        if shift.flagged:
            by_class.setdefault(shift.label, []).append(shift)
    return [f"split shift: {label}'s " + ", ".join(s.said() for s in found) + " differ between train and test: "
            "test was collected otherwise than train, so validation figures will not predict test ones"
            for label, found in by_class.items()]


@dataclass(frozen=True)
class AuditResult:
    data_dir: str
    classes: tuple[str, ...]
    splits: dict[str, dict[str, int]]  # split -> class -> images
    unreadable: list[tuple[str, str]]
    properties: dict[str, dict[str, Any]]  # split -> class -> summary of sizes, modes, formats
    duplicate_pairs: int  # within one split
    leakage_pairs: int  # across two splits
    pairs: list[NearPair]  # the first max_pairs_listed of each kind
    shortcuts: list[Shortcut]
    shifts: list[SplitShift]
    warnings: list[str] = field(default_factory=list)
    label_issues: list[LabelIssue] | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["pairs"] = [asdict(pair) for pair in self.pairs]
        payload["shortcuts"] = [asdict(s) for s in self.shortcuts]
        payload["shifts"] = [asdict(s) for s in self.shifts]
        payload["label_issues"] = None if self.label_issues is None else [asdict(i) for i in self.label_issues]
        return payload


def _list_split(folder: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """Images and class indices of one split, leniently: an audit reports an empty or missing class (training
    refuses it, with its own message), it does not stop at it."""
    classes = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
    return (*class_files(folder, classes), classes)


def read_facts(path: Path, split: str, label: str, with_hash: bool = True) -> ImageFacts | str:
    """The facts of one image (decoded once, hash included), or the one-line reason it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            image_format, mode, (width, height) = image.format or path.suffix.lstrip(".").upper(), image.mode, image.size
            grey = _grey(image)
            hashed = _phash_hex(image) if with_hash else ""
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        return f"{path}: not a readable image ({type(exc).__name__}: {exc}); remove it or replace it with a PNG/JPEG"
    side_h, side_w = max(1, round(height * CORNER_SHARE)), max(1, round(width * CORNER_SHARE))
    corners = (grey[:side_h, :side_w], grey[:side_h, -side_w:], grey[-side_h:, :side_w], grey[-side_h:, -side_w:])
    # markers and burnt-in text are the brightest pixels of a radiograph, and they sit in a corner
    highlight = np.percentile(grey, 99.0)
    return ImageFacts(str(path), split, label, image_format, mode, width, height, path.stat().st_size,
                      float(grey.mean()), float(max(np.mean(c >= highlight) for c in corners)), hashed)


def _read_task(task: tuple[str, str, str, bool]) -> ImageFacts | str:
    path, split, label, with_hash = task
    return read_facts(Path(path), split, label, with_hash)


def read_all(tasks: list[tuple[str, str, str, bool]]) -> list[ImageFacts | str]:
    """`read_facts` of every task, in order, over the CPU's cores when there are enough images to pay for it."""
    workers = min(os.cpu_count() or 1, 8)
    if workers < 2 or len(tasks) < PARALLEL_FROM:
        return [_read_task(task) for task in tasks]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_read_task, tasks, chunksize=64))


def _grey(image) -> np.ndarray:
    """Grey levels 0-255 as float32, whatever the mode (16-bit and float images scaled by their range)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if image.mode != "F" else max(float(values.max()), 1.0)
        return np.clip(values * (255.0 / top), 0, 255)
    return np.asarray(image.convert("L"), dtype=np.float32)


def phash(path: Path) -> np.ndarray:
    """The packed 64-bit pHash of one image file, (8,) uint8."""
    from PIL import Image

    with Image.open(path) as image:
        return np.frombuffer(bytes.fromhex(_phash_hex(image)), dtype=np.uint8)


def _phash_hex(image) -> str:
    """imagehash's pHash of a decoded image via RGB, as train/near_duplicates.py hashes decoded images."""
    import imagehash

    return np.packbits(imagehash.phash(image.convert("RGB").convert("L")).hash.flatten()).tobytes().hex()


def layout(data_dir: Path) -> dict[str, Path]:
    """{split: folder} of DATA (any spelling of train/val/test), or {"all": DATA} for DATA/<class>/."""
    folders = split_folders(data_dir)
    if folders:
        return {split: folders[split] for split in ("train", "val", "test") if split in folders}
    return {ALL: Path(data_dir)}


def audit(data_dir: Path, config: AuditConfig = AuditConfig()) -> AuditResult:
    """Read every image of DATA once and say what it holds, what repeats across splits, what gives the class away.

    Raises:
        DataError: DATA is missing, two folders name one split, or a split holds no class folder.
    """
    started = time.perf_counter()
    data_dir = Path(data_dir)
    folders = layout(data_dir)
    facts: list[ImageFacts] = []
    unreadable: list[tuple[str, str]] = []
    counts: dict[str, dict[str, int]] = {}
    classes: tuple[str, ...] = ()
    for split, folder in folders.items():
        paths, labels, found = _list_split(folder)
        if not found:
            raise DataError(f"{folder}: holds no class folders; expected {folder}/<class>/*.png, one folder per class")
        classes = tuple(sorted(set(classes) | set(found)))
        unreadable += [(str(file), reason) for file, reason in non_image_files(folder, found)]
        counts[split] = {name: 0 for name in found}
        tasks = [(str(path), split, found[label], config.duplicate_distance >= 0) for path, label in zip(paths, labels)]
        for (path, _, label, _), read in zip(tasks, read_all(tasks)):
            if isinstance(read, str):
                unreadable.append((path, read))
                continue
            facts.append(read)
            counts[split][label] += 1
    pairs, within, across = _near_duplicates(facts, config)
    warnings = [f"{folders[split]}: no images of class {', '.join(missing)}; every split needs every class"
                for split in counts if (missing := [c for c in classes if not counts[split].get(c)])]
    warnings += [f"{a.first} and {a.second} ({a.splits[0]} and {a.splits[1]}, pHash distance {a.distance}) are "
                "near-duplicates across splits" for a in pairs if a.splits[0] != a.splits[1]][:3]
    if across > 3:
        warnings.append(f"{across} near-duplicate pairs straddle two splits in all (leakage): the test figures "
                        "measure partly seen images; let mdx carve the split (DATA/<class>/) or move them")
    if unreadable:
        warnings.append(f"{len(unreadable)} file(s) cannot be read as images, e.g. {unreadable[0][1]}")
    train_split = "train" if "train" in folders else ALL
    found_shortcuts = shortcuts([f for f in facts if f.split == train_split], classes, config.shortcut_margin,
                                config.seed)
    warnings += [s.warning() for s in found_shortcuts if s.flagged]
    found_shifts = split_shifts(facts, classes)
    warnings += shift_warnings(found_shifts)
    issues = label_issues(Path(config.labels_run), data_dir) if config.labels_run else None
    if issues:
        warnings.append(f"{len(issues)} test image(s) may carry the wrong class (cleanlab), most suspect first: "
                        f"{issues[0].path} is {issues[0].given}, the model says {issues[0].suggested} "
                        f"({issues[0].p_suggested:.2f}); see label_issues in audit.json")
    return AuditResult(str(data_dir), classes, counts, unreadable, _summaries(facts), within, across, pairs,
                       found_shortcuts, found_shifts, warnings, issues, round(time.perf_counter() - started, 2))


SHIFT_PROPERTIES = ("width", "height", "brightness", "file_bytes")
SHIFT_FLAG = 0.5  # KS distance: half of one split's images lie beyond every value of the other's at some cut
SHIFT_C_ALPHA = 1.95  # the KS test's critical coefficient at alpha 0.001: few test images need a larger distance


def split_shifts(facts: list[ImageFacts], classes: tuple[str, ...]) -> list[SplitShift]:
    """Per class and property, how far train's distribution lies from test's (when DATA has both)."""
    found = []
    for label in classes:
        train = [f for f in facts if f.label == label and f.split == "train"]
        test = [f for f in facts if f.label == label and f.split == "test"]
        if len(train) < 5 or len(test) < 5:
            continue
        for name in SHIFT_PROPERTIES:
            a = np.array([getattr(f, name) for f in train], dtype=np.float64)
            b = np.array([getattr(f, name) for f in test], dtype=np.float64)
            statistic = ks_distance(a, b)
            critical = max(SHIFT_FLAG, SHIFT_C_ALPHA * np.sqrt((len(a) + len(b)) / (len(a) * len(b))))
            found.append(SplitShift(label, name, round(statistic, 3), _spread(a, 1), _spread(b, 1),
                                    statistic >= critical))
    return sorted(found, key=lambda s: -s.statistic)


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The largest gap between the two samples' empirical distribution functions."""
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(np.sort(a), points, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), points, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def _near_duplicates(facts: list[ImageFacts], config: AuditConfig) -> tuple[list[NearPair], int, int]:
    if config.duplicate_distance < 0 or len(facts) < 2:
        return [], 0, 0
    bits = np.stack([np.frombuffer(bytes.fromhex(f.phash), dtype=np.uint8) for f in facts])
    listed: dict[bool, list[NearPair]] = {True: [], False: []}
    count = {True: 0, False: 0}
    for i, j, distance in near_pairs_with_distance(bits, config.duplicate_distance):
        a, b = facts[i], facts[j]
        crossing = a.split != b.split
        count[crossing] += 1
        if len(listed[crossing]) < config.max_pairs_listed:
            listed[crossing].append(NearPair(a.path, b.path, distance, (a.split, b.split)))
    return listed[True] + listed[False], count[False], count[True]


def _summaries(facts: list[ImageFacts]) -> dict[str, dict[str, Any]]:
    """split -> class -> sizes (min/median/max), aspect ratios, modes, formats, brightness."""
    by_split: dict[str, dict[str, list[ImageFacts]]] = {}
    for fact in facts:
        by_split.setdefault(fact.split, {}).setdefault(fact.label, []).append(fact)
    summary: dict[str, dict[str, Any]] = {}
    for split, by_class in by_split.items():
        summary[split] = {}
        for label, items in sorted(by_class.items()):
            widths = np.array([f.width for f in items])
            heights = np.array([f.height for f in items])
            aspects = widths / heights
            summary[split][label] = {
                "width": _spread(widths), "height": _spread(heights), "aspect": _spread(aspects, 3),
                "modes": dict(Counter(f.mode for f in items).most_common()),
                "formats": dict(Counter(f.format for f in items).most_common()),
                "brightness": _spread(np.array([f.brightness for f in items]), 1),
            }
    return summary


def _spread(values: np.ndarray, digits: int = 0) -> dict[str, float]:
    def rounded(x: float) -> float:
        return round(float(x), digits) if digits else round(float(x))

    return {"min": rounded(values.min()), "median": rounded(np.median(values)), "max": rounded(values.max())}



def write_audit(result: AuditResult, config: AuditConfig, folder: Path) -> Path:
    """`folder/audit.json` and `folder/record.json`, staged so that an interrupted audit leaves no half folder."""
    from mdx.records import staged_dir, write_record
    from mdx.runtime.files import atomic_write_json

    with staged_dir(folder, overwrite=True) as staging:
        report = atomic_write_json(staging / "audit.json", result.to_json())
        write_record(staging, stage="audit", config=asdict(config), inputs=[], outputs=[report],
                     metrics={"images": sum(sum(c.values()) for c in result.splits.values()),
                              "unreadable": len(result.unreadable), "duplicate_pairs": result.duplicate_pairs,
                              "leakage_pairs": result.leakage_pairs,
                              "shortcuts": [s.property for s in result.shortcuts if s.flagged]},
                     wall_seconds=result.seconds, extra={"data_dir": result.data_dir})
    return folder / "audit.json"


def audit_stage(data_dir: Path, config: AuditConfig, folder: Path, *, strict: bool = False) -> AuditResult:
    """Audit DATA into `folder` (audit.json, record.json); with `strict`, leakage is an error.

    Raises:
        DataError: `strict` and near-duplicates straddle two splits (the report is written first, to read).
    """
    result = audit(data_dir, config)
    refuse_leakage(result, config, folder, strict=strict)
    write_audit(result, config, folder)
    return result


def refuse_leakage(result: AuditResult, config: AuditConfig, folder: Path, *, strict: bool) -> None:
    """With `strict`, near-duplicates across splits stop the run: the report is written to `folder` to read.

    Training audits first and writes its report only once training has succeeded, so that data it
    refuses leaves no run folder; leakage under --strict-audit is the exception, reported in full.

    Raises:
        DataError: `strict` and near-duplicates straddle two splits.
    """
    from mdx.errors import DataError

    if not (strict and result.leakage_pairs):
        return
    report = write_audit(result, config, folder)
    first = next(p for p in result.pairs if p.splits[0] != p.splits[1])
    raise DataError(f"{first.first} and {first.second}: {result.leakage_pairs} near-duplicate pair(s) straddle "
                    f"two splits (all listed in {report}); remove or move them, or drop --strict (--strict-audit)")
