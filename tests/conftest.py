"""Fixtures shared by every test folder: where the bundled data is, and small real subsets of it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parent.parent
CHEST_XRAY = REPO / "data" / "chest_xray"
IMAGENET_DIR = REPO / "data" / "imagenet_mobilenet_v2"


def copy_subset(target: Path, per_class: dict[str, int], splits: tuple[str, ...] = ("train", "test")) -> Path:
    """Copy the first N real chest X-rays of each class and split into `target/<split>/<class>/`."""
    for split in splits:
        for name, count in per_class.items():
            source = CHEST_XRAY / split / name
            destination = target / split / name
            destination.mkdir(parents=True, exist_ok=True)
            for image in sorted(source.iterdir())[:count]:
                shutil.copy2(image, destination / image.name)
    return target


@pytest.fixture(scope="session")
def xray_subset(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Path]:
    """A factory: `xray_subset(n)` gives a read-only-by-convention folder with n real images per class and split."""
    made: dict[int, Path] = {}

    def make(per_class: int) -> Path:
        if per_class not in made:
            root = tmp_path_factory.mktemp(f"xray{per_class}")
            made[per_class] = copy_subset(root, {"NORMAL": per_class, "PNEUMONIA": per_class})
        return made[per_class]

    return make
