"""The split manifest: one row per image (path, sha256, class, split, group), written once when training
first reads a data set, and read by every later stage instead of re-deriving the split.

Paths are relative to the data folder (POSIX separators), so a manifest travels with its data. Reading
one checks that every file is still there with the same bytes: a split that silently changed would
make every figure measured on it a figure of another split.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import InputDataError
from .files import atomic_write_text, sha256_file

MANIFEST_NAME = "split_manifest.csv"
MANIFEST_SUFFIX = "manifest.csv"  # what evaluate and check take as DATA: the manifest's test split
FIELDS = ("path", "sha256", "class", "split", "group")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ManifestRow:
    """One image: its path relative to the data folder, its sha256, class name, split and group."""

    path: str
    sha256: str
    label: str
    split: str
    group: str


def manifest_text(rows: Sequence[ManifestRow]) -> str:
    """The CSV text of `rows`, header first, in the order given (the same rows give the same bytes)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FIELDS)
    for row in rows:
        writer.writerow((row.path, row.sha256, row.label, row.split, row.group))
    return buffer.getvalue()


def write_manifest(rows: Sequence[ManifestRow], path: Path) -> Path:
    """Write `rows` to `path` (temporary name, then rename)."""
    return atomic_write_text(Path(path), manifest_text(rows))


def rows_for(split: str, files: Sequence[Path], labels: Sequence[int], class_names: Sequence[str],
             groups: Sequence[str], root: Path) -> list[ManifestRow]:
    """Manifest rows of one split: each file hashed, its path made relative to `root`."""
    root = Path(root).resolve()
    rows = []
    for file, label, group in zip(files, labels, groups):
        resolved = Path(file).resolve()
        try:
            relative = resolved.relative_to(root).as_posix()
        except ValueError:
            relative = resolved.as_posix()  # outside the data folder (a val/ elsewhere): kept absolute
        # an image outside any named group is its own group, named by its path: relative, as the path column
        group = str(group)
        if Path(group).is_absolute() and Path(group).resolve().is_relative_to(root):
            group = Path(group).resolve().relative_to(root).as_posix()
        rows.append(ManifestRow(relative, sha256_file(resolved), str(class_names[int(label)]), split, group))
    return rows


def read_manifest(path: Path, root: Path, *, check_files: bool = True) -> tuple[ManifestRow, ...]:
    """The rows of a manifest, each file checked against its recorded sha256 under `root`.

    Raises:
        InputDataError: the manifest is missing or malformed, names an unknown split, or a file it names is
            missing or has other bytes than recorded (named, with the fix).
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{path}: split manifest not found; pass the {MANIFEST_NAME} of an earlier run")
    reader = csv.reader(io.StringIO(path.read_text(encoding="utf-8")))
    header = tuple(next(reader, ()))
    if header != FIELDS:
        raise InputDataError(f"{path}: header {list(header)} is not a split manifest's {list(FIELDS)}")
    rows = []
    for number, fields in enumerate(reader, start=2):
        if len(fields) != len(FIELDS):
            raise InputDataError(f"{path}:{number}: expected {len(FIELDS)} fields ({', '.join(FIELDS)}), got {len(fields)}")
        row = ManifestRow(*fields)
        if row.split not in SPLITS:
            raise InputDataError(f"{path}:{number}: split {row.split!r} is unknown; expected one of {', '.join(SPLITS)}")
        rows.append(row)
    if not rows:
        raise InputDataError(f"{path}: names no image; a split manifest has one row per image")
    if check_files:
        for row in rows:
            file = resolve(row, root)
            if not file.is_file():
                raise InputDataError(f"{path}: names {file}, which is missing; restore it, or make a new split "
                                     "(drop --split-manifest)")
            if sha256_file(file) != row.sha256:
                raise InputDataError(f"{path}: {file} has changed (sha256 differs from the manifest's); restore the "
                                     "original, or make a new split (drop --split-manifest)")
    return tuple(rows)


def resolve(row: ManifestRow, root: Path) -> Path:
    """The file a row names: its path under `root` (an absolute path stays as it is)."""
    return Path(row.path) if Path(row.path).is_absolute() else Path(root) / row.path


def split_files(rows: Sequence[ManifestRow], split: str, root: Path,
                class_names: Sequence[str]) -> tuple[list[Path], list[int]]:
    """(files, class indices) of one split, in manifest order.

    Raises:
        InputDataError: a row's class is not one of `class_names`.
    """
    files, labels = [], []
    for row in rows:
        if row.split != split:
            continue
        if row.label not in class_names:
            raise InputDataError(f"split manifest: class {row.label!r} of {row.path} is not one of {list(class_names)}")
        files.append(resolve(row, root))
        labels.append(list(class_names).index(row.label))
    return files, labels


def manifest_root(path: Path) -> Path:
    """The data folder a manifest's paths are relative to: `data.root` of the record.json beside it, else
    the manifest's own folder."""
    import json

    record = Path(path).parent / "record.json"
    if record.is_file():
        try:
            root = json.loads(record.read_text(encoding="utf-8")).get("data", {}).get("root")
        except (OSError, json.JSONDecodeError, AttributeError):
            root = None
        if root:
            return Path(root)
    return Path(path).parent
