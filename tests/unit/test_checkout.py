"""The checkout is what it installs: from the repository root `import mdx.runtime` finds runtime/ (and so on for
each stage folder), an installed package ignores the folders beside it, and the wheel holds the same files."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import mdx

REPO = Path(__file__).resolve().parents[2]
WHEEL_FILES = REPO / "tests" / "fixtures" / "wheel_files.txt"


def _package_dir() -> dict[str, str]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    with open(REPO / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["tool"]["setuptools"]["package-dir"]


def test_package_dirs_equal_pyproject_package_dir() -> None:
    mapped = {name: folder for name, folder in _package_dir().items() if name != "mdx"}
    assert mdx.PACKAGE_DIRS == mapped


def test_checkout_root_imports_each_stage_from_its_folder() -> None:
    code = ("import importlib.resources, mdx.train, mdx.convert, mdx.quantize, mdx.runtime.cli, mdx.weights\n"
            "print(mdx.__file__); print(mdx.train.__file__); print(mdx.convert.__file__); "
            "print(mdx.quantize.__file__); print(mdx.runtime.cli.__file__)\n"
            "print(importlib.resources.files('mdx.weights').joinpath('LICENSE').is_file())\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(REPO / "mdx" / "__init__.py"), str(REPO / "train" / "__init__.py"),
                                   str(REPO / "convert" / "__init__.py"), str(REPO / "quantize" / "__init__.py"),
                                   str(REPO / "runtime" / "cli.py"), "True"]


def test_checkout_dirs_installed_package_maps_nothing(tmp_path: Path) -> None:
    package = tmp_path / "site-packages" / "mdx"
    for folder in (package / "runtime", tmp_path / "site-packages" / "runtime"):
        folder.mkdir(parents=True)
    assert mdx.checkout_dirs(package, {"mdx.runtime": "runtime"}) == {}


def test_checkout_dirs_checkout_maps_folders_beside_it(tmp_path: Path) -> None:
    (tmp_path / "mdx").mkdir()
    (tmp_path / "runtime").mkdir()
    (tmp_path / "data" / "weights").mkdir(parents=True)
    dirs = {"mdx.runtime": "runtime", "mdx.weights": "data/weights", "mdx.train": "train"}
    assert mdx.checkout_dirs(tmp_path / "mdx", dirs) == {"mdx.runtime": tmp_path / "runtime",
                                                         "mdx.weights": tmp_path / "data" / "weights"}


def _wheel_files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return sorted(re.sub(r"^mdx-[^/]+\.dist-info/", "mdx-VERSION.dist-info/", n) for n in archive.namelist())


@pytest.mark.slow
def test_wheel_files_equal_fixture(tmp_path: Path) -> None:
    # built from a copy: setuptools packs whatever a stale build/lib in the checkout still holds
    source = shutil.copytree(REPO, tmp_path / "src", ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "*.egg-info", "runs", "__pycache__", ".*_cache", "chest_xray"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                           str(source)], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    [wheel] = (tmp_path / "dist").glob("mdx-*.whl")
    # a file added to or removed from the package on purpose: update tests/fixtures/wheel_files.txt with it
    assert _wheel_files(wheel) == WHEEL_FILES.read_text().split()
