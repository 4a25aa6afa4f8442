"""mdx: medical image classifiers from training to a phone or a Raspberry Pi, with parity proven at every step.

In a checkout, `mdx.train`, `mdx.convert`, `mdx.quantize` and `mdx.runtime` live in folders beside this one
(pyproject.toml's `[tool.setuptools] package-dir`), so Python alone would not find them under `mdx`. When
this file is imported from a checkout, a finder maps each of them to its folder, so that `python -m pytest`,
a notebook or `python -c "import mdx.runtime"` at the repository root see the package that `pip install .`
builds. An installed package holds its stages inside it, and the finder is never added there.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

# public from Python 3.11; the same class under a private name in 3.10
_NamespaceLoader = (getattr(importlib.machinery, "NamespaceLoader", None)
                    or importlib._bootstrap_external._NamespaceLoader)  # type: ignore[attr-defined]

__version__ = "0.1.0"

# Equal to pyproject.toml's [tool.setuptools.package-dir] (tests/unit/test_checkout.py compares them).
PACKAGE_DIRS = {
    "mdx.train": "train",
    "mdx.convert": "convert",
    "mdx.quantize": "quantize",
    "mdx.runtime": "runtime",
    "mdx.weights": "data/imagenet_mobilenet_v2",
}


def checkout_dirs(package: Path, package_dirs: Mapping[str, str] = PACKAGE_DIRS) -> dict[str, Path]:
    """The stage folders of a checkout whose `mdx/` is `package`: those beside it and not inside it.

    Args:
        package: the folder of this package (`mdx/` in a checkout, site-packages/mdx when installed).
        package_dirs: subpackage name -> folder relative to the repository root.

    Returns:
        name -> folder, for each subpackage that is not installed in `package` but exists beside it.
    """
    found = {}
    for name, relative in package_dirs.items():
        inside = package / name.rpartition(".")[2]
        beside = package.parent / relative
        if not inside.exists() and beside.is_dir():
            found[name] = beside
    return found


class CheckoutFinder:
    """Finds the stage subpackages of a checkout in their own folders, and nothing else."""

    def __init__(self, dirs: Mapping[str, Path]) -> None:
        self.dirs = dict(dirs)

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        """The spec of a stage subpackage from its folder; None for any other name."""
        folder = self.dirs.get(fullname)
        if folder is None:
            return None
        init = folder / "__init__.py"
        if init.is_file():
            return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=[str(folder)])
        # a folder of data files only (mdx.weights): a namespace package, as it is when installed; its loader
        # is made here because importlib.resources reads a namespace package only through a NamespaceLoader
        loader = _NamespaceLoader(fullname, [str(folder)], lambda name, parent_path: None)  # the folder is fixed
        spec = importlib.machinery.ModuleSpec(fullname, loader, is_package=True)
        spec.submodule_search_locations = loader._path
        return spec


def _add_checkout_finder() -> None:
    dirs = checkout_dirs(Path(__file__).resolve().parent)
    # importing this file twice (importlib.reload, a second sys.path entry) must not add a second finder
    if dirs and not any(type(f).__name__ == "CheckoutFinder" and getattr(f, "dirs", None) == dirs
                        for f in sys.meta_path):
        sys.meta_path.append(CheckoutFinder(dirs))  # appended: whatever Python finds itself comes first


_add_checkout_finder()
