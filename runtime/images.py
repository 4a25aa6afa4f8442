"""Image decoding and folder-per-class data sets, identical for training and for the harness.

Every image becomes RGB uint8 of the requested square size: grey, 16-bit, palette and RGBA PNGs are
converted, EXIF orientation is applied, and an unreadable file is refused naming the file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputDataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MAX_PIXELS = 100_000_000  # a decompression bomb beyond this is refused, not decoded


def _pil():
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise InputDataError("reading images needs pillow: pip install pillow") from None
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    return Image, ImageOps


def _to_rgb8(image) -> np.ndarray:
    """Any PIL mode -> RGB uint8 array; 16-bit and float greys are rescaled by their full range."""
    Image, _ = _pil()
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        grey = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # composite on black: X-ray backgrounds are black, and transparency must not add new content
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _is_dicom(path: Path) -> bool:
    """DICOM Part 10 files carry "DICM" after a 128-byte preamble, whatever their name."""
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _dicom_message(path: Path) -> str:
    return f"{path}: DICOM is not supported by this build; export the image as PNG"


def load_image(path: Path, size: int) -> np.ndarray:
    """Decode `path` to RGB uint8 (size, size, 3), bilinear resize (aspect ratio not kept).

    Raises:
        InputDataError: the file is missing, not an image, truncated, or too large.
    """
    Image, ImageOps = _pil()
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        raise InputDataError(_dicom_message(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                image = ImageOps.exif_transpose(image)
                if image.size != (size, size):
                    image = image.resize((size, size), Image.Resampling.BILINEAR)
                return _to_rgb8(image)
    except FileNotFoundError:
        raise InputDataError(f"{path}: no such file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputDataError(f"{path}: image is larger than {MAX_PIXELS} pixels; downscale it first") from None
    except (OSError, ValueError, SyntaxError) as exc:
        if _is_dicom(path):
            raise InputDataError(_dicom_message(path)) from None
        raise InputDataError(f"{path}: not a readable image ({exc}); remove or replace the file") from None


@dataclass(frozen=True)
class ImageSet:
    """Decoded images (N, size, size, 3) uint8, integer labels, the class names, and where each came from."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    paths: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def list_classes(root: Path) -> tuple[str, ...]:
    """Sorted class folder names under `root`, which must hold at least two non-empty class folders.

    Raises:
        InputDataError: `root` is missing, or holds fewer than two classes, or an empty class folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputDataError(f"{root}: data folder not found; expected one sub-folder per class")
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if len(classes) < 2:
        raise InputDataError(
            f"{root}: found {len(classes)} class folder(s) {list(classes)}; expected at least 2 (one sub-folder per class)"
        )
    for name in classes:
        if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in (root / name).iterdir() if f.is_file()):
            raise InputDataError(f"{root / name}: class folder holds no images ({', '.join(IMAGE_SUFFIXES)}); add images or remove it")
    return classes


def list_images(root: Path, class_names: tuple[str, ...] | None = None, *,
                as_text: bool = False) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    """Image paths and labels of a folder-per-class tree; `class_names` fixes the label order.
    `as_text` lists the paths as str (`class_file_texts`), for archives too large for a Path each.

    Raises:
        InputDataError: the classes found differ from `class_names`.
    """
    root = Path(root)
    found = list_classes(root)
    if class_names is not None and tuple(found) != tuple(class_names):
        raise InputDataError(
            f"{root}: class folders {list(found)} differ from the model's classes {list(class_names)}; "
            "make the folders match the classes the model was trained on"
        )
    classes = tuple(class_names) if class_names is not None else found
    paths, labels = (class_file_texts if as_text else class_files)(root, classes)
    return paths, np.asarray(labels, dtype=np.int64), classes


def class_files(root: Path, classes: tuple[str, ...]) -> tuple[list[Path], list[int]]:
    """The image files of each class folder of `root` (sorted), with the class's index; no checks."""
    paths, labels = class_file_texts(root, classes)
    return [Path(p) for p in paths], labels


def class_file_texts(root: Path, classes: tuple[str, ...]) -> tuple[list[str], list[int]]:
    """`class_files` as str paths, read with os.scandir: no Path object per file (about 360 bytes each),
    for the archives `mdx evaluate` streams (benchmarks/evaluate_scale.py)."""
    paths: list[str] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        with os.scandir(os.path.join(root, name)) as entries:
            found = sorted(entry.path for entry in entries
                           if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file())
        paths.extend(found)
        labels.extend([index] * len(found))
    return paths, labels


def non_image_files(root: Path, classes: tuple[str, ...]) -> list[tuple[Path, str]]:
    """(file, reason) for each file of the class folders that the suffix filter leaves out, hidden files aside.

    They are reported, not dropped silently: a class folder of .dcm files must not shrink without a word.
    """
    found: list[tuple[Path, str]] = []
    for name in classes:
        # os.scandir, and a Path only for what is reported: a Path per image of a 62,400-image archive
        # cost evaluate 12 MB of RSS that stayed (benchmarks/evaluate_scale.py)
        with os.scandir(os.path.join(root, name)) as entries:
            others = sorted(entry.name for entry in entries if not entry.name.startswith(".")
                            and os.path.splitext(entry.name)[1].lower() not in IMAGE_SUFFIXES and entry.is_file())
        for file in (Path(root) / name / other for other in others):
            suffix = file.suffix.lower()
            reason = _dicom_message(file) if suffix == ".dcm" else (
                f"{file}: not an image file (suffix {file.suffix!r}); images end in {', '.join(IMAGE_SUFFIXES)}")
            found.append((file, reason))
    return found


def load_folder(
    root: Path,
    size: int,
    class_names: tuple[str, ...] | None = None,
    *,
    skip_unreadable: bool = True,
    on_skip=None,
) -> ImageSet:
    """Decode every image of a folder-per-class tree.

    Unreadable files are skipped with a warning naming each (via `on_skip(path, reason)`, else
    `warnings.warn`) when `skip_unreadable`; otherwise the first one raises.
    """
    paths, labels, classes = list_images(root, class_names)
    report = on_skip or (lambda p, r: warnings.warn(f"skipped {r}", stacklevel=3))
    for file, reason in non_image_files(root, classes):
        report(file, reason)
    return load_files(paths, list(labels), classes, size, skip_unreadable=skip_unreadable, on_skip=report,
                      where=str(root))


def load_files(files: list[Path], labels: list[int], class_names: tuple[str, ...], size: int, *,
               skip_unreadable: bool = True, on_skip=None, where: str = "split manifest") -> ImageSet:
    """Decode the listed images (a split manifest's), with their class indices into `class_names`.

    Raises:
        InputDataError: no file is listed or none can be read; with `skip_unreadable` False, the first
            unreadable one.
    """
    report = on_skip or (lambda p, r: warnings.warn(f"skipped {r}", stacklevel=3))
    images = np.empty((len(files), size, size, 3), dtype=np.uint8)
    kept: list[int] = []
    for i, path in enumerate(files):
        try:
            images[len(kept)] = load_image(Path(path), size)
        except InputDataError as exc:
            if not skip_unreadable:
                raise
            report(path, str(exc))
            continue
        kept.append(i)
    if not kept:
        raise InputDataError(f"{where}: none of the {len(files)} images could be read")
    return ImageSet(images=images[: len(kept)], labels=np.asarray(labels, dtype=np.int64)[kept],
                    class_names=tuple(class_names), paths=tuple(str(files[i]) for i in kept))


@dataclass(frozen=True, eq=False)
class ImageChunk:
    """One bounded slice of a folder: decoded images (n, size, size, 3) uint8, their labels and paths."""

    images: np.ndarray
    labels: np.ndarray
    paths: tuple[str, ...]


def _decode(path: Path, size: int) -> np.ndarray | InputDataError:
    try:
        return load_image(path, size)
    except InputDataError as exc:  # returned, not raised: the caller reports it in file order
        return exc


def iter_folder(
    root: Path,
    size: int,
    class_names: tuple[str, ...] | None = None,
    *,
    skip_unreadable: bool = True,
    on_skip=None,
    chunk_size: int = 64,
    decoders: int = 2,
) -> Iterator[ImageChunk]:
    """Decode a folder-per-class tree `chunk_size` images at a time, in the order `load_folder` reads them.

    At most two chunks are decoded at once: the one yielded and the next, decoded by `decoders` threads
    (pillow releases the GIL while it decodes and resizes) while the caller runs the model on the first.
    Skipping and errors are those of `load_folder`.

    Raises:
        InputDataError: as `load_folder`, when the chunk holding the file is reached.
    """
    # listed now: a bad folder fails before any decoding
    paths, labels, classes = list_images(root, class_names, as_text=True)
    report = on_skip or (lambda p, r: warnings.warn(f"skipped {r}", stacklevel=3))
    for file, reason in non_image_files(root, classes):
        report(file, reason)
    return _decode_chunks(Path(root), paths, labels, size, skip_unreadable, report, chunk_size, decoders)


def iter_files(where: Path, files: list[Path], labels: np.ndarray, size: int, *, skip_unreadable: bool = True,
               on_skip=None, chunk_size: int = 64, decoders: int = 2) -> Iterator[ImageChunk]:
    """`iter_folder` for listed files (a split manifest's), named by `where` in errors."""
    report = on_skip or (lambda p, r: warnings.warn(f"skipped {r}", stacklevel=3))
    return _decode_chunks(Path(where), list(files), labels, size, skip_unreadable, report, chunk_size, decoders)


def _decode_chunks(root: Path, paths: list[Path], labels: np.ndarray, size: int, skip_unreadable: bool, report,
                   chunk_size: int, decoders: int) -> Iterator[ImageChunk]:
    starts = range(0, len(paths), chunk_size)
    kept_any = False
    with ThreadPoolExecutor(max_workers=max(1, decoders)) as pool:
        def submit(start: int) -> list[Future]:
            return [pool.submit(_decode, p, size) for p in paths[start : start + chunk_size]]

        pending = submit(0) if paths else []
        for start in starts:
            decoded = [f.result() for f in pending]
            pending = submit(start + chunk_size) if start + chunk_size < len(paths) else []
            images, kept = [], []
            for offset, value in enumerate(decoded):
                if isinstance(value, InputDataError):
                    if not skip_unreadable:
                        for f in pending:
                            f.cancel()
                        raise value
                    report(paths[start + offset], str(value))
                    continue
                images.append(value)
                kept.append(start + offset)
            del decoded
            if not kept:
                continue
            kept_any = True
            yield ImageChunk(np.stack(images), labels[kept], tuple(str(paths[i]) for i in kept))
    if not kept_any:
        raise InputDataError(f"{root}: none of the {len(paths)} images could be read")
