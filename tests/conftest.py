"""Fixtures shared by every test folder: where the bundled data is, and small real subsets of it."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
CHEST_XRAY = REPO / "data" / "chest_xray"
IMAGENET_DIR = REPO / "data" / "imagenet_mobilenet_v2"

# pytest runs on two workers, a whole module per worker (pyproject.toml: -n 2 --dist loadfile), which
# hand out modules in this order. The longest go first, so that the demo-sized training (about a third of
# the suite's time) starts at once and the short modules fill the other worker around it. Seconds: one
# serial run's `--durations=0` on the 2-core AVX2 machine (2026-12-03).
LONGEST_FIRST = (
    "integration/test_int8_parity_real.py",  # 802 (544 since 2 fine-tuning epochs, not 5)
    "integration/test_train.py",  # 246
    "cli/test_pipeline_cli.py",  # 192
    "reliability/test_resume.py",  # 191
    "integration/test_prune.py",  # 154
    "reliability/test_multiworker.py",  # 154
    "reliability/test_interrupts.py",  # 79
    "integration/test_train_benchmark.py",  # 72
    "cli/test_report.py",  # 72
    "reliability/test_reproducibility.py",  # 56
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.path.relative_to(REPO / "tests").as_posix()
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: within a module, and among the rest, the collection order stays


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
def load_script() -> Callable[[Path], ModuleType]:
    """Import a script that is not in the package (benchmarks/*.py, tests/fixtures/*.py) from its path."""

    def load(path: Path) -> ModuleType:
        spec = importlib.util.spec_from_file_location(Path(path).stem, path)
        assert spec is not None and spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


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


# The tiny pipeline's recipe: a random-init MobileNetV2 0.35 at 32 px, one epoch per phase. It proves
# what the stages write and how they chain, not accuracy.
TINY_RECIPE = {"input_size": 32, "alpha": 0.35, "weights": "none", "epochs_frozen": 1, "epochs_finetune": 1,
               "batch_size": 8, "bootstrap": 50, "val_fraction": 0.25}


@pytest.fixture
def tiny_recipe() -> dict:
    """TINY_RECIPE for test modules (which cannot import conftest), a copy each test may change."""
    return dict(TINY_RECIPE)


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> tuple[Path, Path, str]:
    """(data, run, CLI output) of `mdx pipeline` on 8 real X-rays per class and split, with TINY_RECIPE.

    Built once for the whole session (about a minute of TensorFlow): the first worker to ask builds it
    under a lock in the workers' shared temporary folder, the other waits and reads it. Tests only read it.
    """
    from typer.testing import CliRunner

    from mdx.cli import app

    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    root = shared / "tiny-pipeline"
    root.mkdir(exist_ok=True)
    data, run, output = root / "data", root / "run", root / "output.txt"
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if building fails
        if not output.is_file():
            shutil.rmtree(data, ignore_errors=True)
            shutil.rmtree(run, ignore_errors=True)
            copy_subset(data, {"NORMAL": 8, "PNEUMONIA": 8})
            recipe = root / "recipe.json"
            recipe.write_text(json.dumps(TINY_RECIPE))
            result = CliRunner().invoke(app, ["pipeline", str(data), "--out", str(run), "--train-config", str(recipe)])
            text = result.output + (repr(result.exception) if result.exit_code else "")
            assert result.exit_code == 0, text
            output.write_text(text)
    return data, run, output.read_text()


def find_side_python(variable: str, default: Path, build_hint: str) -> Path:
    """The interpreter of a side environment (tflite-runtime, MediaPipe), or skip naming how to build it.

    Under MDX_REQUIRE_SIDE_RUNTIMES=1 (CI, after .ci/install-side-runtimes.sh) a missing one fails instead:
    a test that silently skips there would hide a broken install.
    """
    import os

    python = Path(os.environ.get(variable, default))
    if not python.is_file():
        message = f"no environment at {python}: {build_hint} (or set {variable})"
        if os.environ.get("MDX_REQUIRE_SIDE_RUNTIMES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return python


@pytest.fixture(scope="session")
def side_python() -> Callable[[str, Path, str], Path]:
    """`side_python(VARIABLE, default, hint)`: find_side_python for test modules, which cannot import conftest."""
    return find_side_python
