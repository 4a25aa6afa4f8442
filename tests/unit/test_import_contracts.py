"""The architecture's import rules, read from the source of every module that pyproject.toml installs.

Every import statement counts: at module level, inside functions and under TYPE_CHECKING (a lazy import is
still a dependency). Rules:
  * runtime/ imports no other mdx module and no TensorFlow, and itself only relatively, so the folder alone
    runs as `python -m runtime` (its interpreter fallback loads tensorflow.lite by name, at the user's choice);
  * train/ never imports convert/ or quantize/, not even through another mdx module;
  * nothing installed imports benchmarks/ (scripts that are not in the wheel);
  * the package has no import cycle.
Each rule is shown to fail on a copy of the source with one bad import planted.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TENSORFLOW = ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization")


@dataclass(frozen=True)
class Import:
    line: int
    target: str  # the module imported, resolved: `from . import x` in mdx.runtime.cli is mdx.runtime.x
    relative: bool


def _package_dirs(root: Path) -> dict[str, Path]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    with open(root / "pyproject.toml", "rb") as file:
        dirs = tomllib.load(file)["tool"]["setuptools"]["package-dir"]
    return {name: root / folder for name, folder in dirs.items()}


def modules(root: Path) -> dict[str, Path]:
    """Module name -> source file, for every .py file of every package in pyproject.toml's package-dir."""
    found = {}
    for package, folder in _package_dirs(root).items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            found[".".join((package, *parts[:-1 if parts[-1] == "__init__" else None]))] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[Import]:
    """The imports of module `name` (source `path`); `from X import y` is X.y when that is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (Import(node.lineno, alias.name, False) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{node.module}" if node.module else parent
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield Import(node.lineno, sub if sub in known else base, node.level > 0)


def import_graph(root: Path) -> tuple[dict[str, Path], dict[str, list[Import]]]:
    found = modules(root)
    return found, {name: list(imports_of(name, path, set(found))) for name, path in found.items()}


def _where(root: Path, path: Path, found: Import) -> str:
    return f"{path.relative_to(root)}:{found.line} imports {found.target}"


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def runtime_violations(root: Path) -> list[str]:
    """runtime/ imports no TensorFlow and no mdx module but its own, and those only relatively."""
    found, graph = import_graph(root)
    return [_where(root, found[name], imp) for name, imps in graph.items() if _in(name, "mdx.runtime")
            for imp in imps
            if imp.target.split(".")[0] in TENSORFLOW
            or _in(imp.target, "mdx") and not (_in(imp.target, "mdx.runtime") and imp.relative)]


def _chain(graph: dict[str, list[Import]], start: str, forbidden: tuple[str, ...]) -> list[str] | None:
    """The shortest import chain from `start` to a module in one of the `forbidden` packages, if any."""
    paths = {start: [start]}
    todo = [start]
    while todo:
        name = todo.pop(0)
        for imp in graph.get(name, []):
            if imp.target in graph and imp.target not in paths:
                paths[imp.target] = paths[name] + [imp.target]
                if any(_in(imp.target, package) for package in forbidden):
                    return paths[imp.target]
                todo.append(imp.target)
    return None


def train_violations(root: Path) -> list[str]:
    """train/ reaches neither convert/ nor quantize/ through any chain of imports."""
    _, graph = import_graph(root)
    chains = (_chain(graph, name, ("mdx.convert", "mdx.quantize")) for name in graph if _in(name, "mdx.train"))
    return [" -> ".join(chain) for chain in chains if chain]


def benchmarks_violations(root: Path) -> list[str]:
    """No installed module imports benchmarks/, by its package name or a script's bare name."""
    scripts = {"benchmarks"} | {path.stem for path in (root / "benchmarks").glob("*.py")}
    found, graph = import_graph(root)
    return [_where(root, found[name], imp) for name, imps in graph.items() for imp in imps
            if not imp.relative and imp.target.split(".")[0] in scripts]


def cycles(root: Path) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others (Tarjan's strongly connected parts)."""
    _, graph = import_graph(root)
    edges = {name: sorted({imp.target for imp in imps if imp.target in graph}) for name, imps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for target in edges[name]:
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            group = stack[stack.index(name):]
            del stack[stack.index(name):]
            if len(group) > 1 or name in edges[name]:
                found.append(sorted(group))

    for name in edges:
        if name not in index:
            visit(name)
    return found


# ---- the rules hold ----------------------------------------------------------------------------


def test_import_contract_runtime_imports_no_sibling_and_no_tensorflow() -> None:
    assert "mdx.runtime.cli" in modules(REPO)
    assert runtime_violations(REPO) == []


def test_import_contract_train_never_reaches_convert_or_quantize() -> None:
    assert "mdx.train.prune" in modules(REPO)
    assert train_violations(REPO) == []


def test_import_contract_nothing_imports_benchmarks() -> None:
    assert benchmarks_violations(REPO) == []


def test_import_contract_package_has_no_cycle() -> None:
    assert cycles(REPO) == []


# ---- each rule fails when broken ---------------------------------------------------------------


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A copy of the package's source (no data files) to plant bad imports in."""
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy2(REPO / "pyproject.toml", copy / "pyproject.toml")
    for folder in {*_package_dirs(REPO).values(), REPO / "benchmarks"}:
        shutil.copytree(folder, copy / folder.relative_to(REPO),
                        ignore=shutil.ignore_patterns("__pycache__", "*.tflite", "*.bmp", "results"))
    return copy


def plant(root: Path, relative: str, statement: str) -> int:
    """Append `statement` inside a function at the end of `relative`; returns its line number."""
    path = root / relative
    text = path.read_text(encoding="utf-8").rstrip("\n") + "\n\n\ndef _planted():\n"
    path.write_text(text + f"    {statement}\n", encoding="utf-8")
    return text.count("\n") + 1


@pytest.mark.parametrize(("statement", "target"), [
    ("from mdx.errors import MdxError", "mdx.errors"),
    ("from ..records import read_record", "mdx.records"),  # relative, but out of runtime/
    ("import mdx.runtime.errors", "mdx.runtime.errors"),  # its own module, but absolute: a copied folder lacks mdx
    ("import tensorflow as tf", "tensorflow"),
    ("from tf_keras import layers", "tf_keras"),
])
def test_import_contract_runtime_planted_import_fails(source: Path, statement: str, target: str) -> None:
    line = plant(source, "runtime/metrics.py", statement)
    assert runtime_violations(source) == [f"runtime/metrics.py:{line} imports {target}"]


def test_import_contract_runtime_relative_own_import_passes(source: Path) -> None:
    plant(source, "runtime/metrics.py", "from .errors import InputDataError")
    assert runtime_violations(source) == []


def test_import_contract_train_planted_direct_import_fails(source: Path) -> None:
    plant(source, "train/data.py", "from mdx.convert.convert import convert")
    assert "mdx.train.data -> mdx.convert.convert" in train_violations(source)


def test_import_contract_train_planted_indirect_import_fails(source: Path) -> None:
    plant(source, "mdx/records.py", "from mdx.quantize import recipes")  # train/ imports mdx.records
    assert "mdx.train.prune -> mdx.records -> mdx.quantize.recipes" in train_violations(source)


@pytest.mark.parametrize(("statement", "target"), [
    ("from benchmarks.common import context", "benchmarks.common"),
    ("import common", "common"),  # benchmarks/common.py, with benchmarks/ on sys.path
])
def test_import_contract_benchmarks_planted_import_fails(source: Path, statement: str, target: str) -> None:
    line = plant(source, "mdx/cli/app.py", statement)
    assert benchmarks_violations(source) == [f"mdx/cli/app.py:{line} imports {target}"]


def test_import_contract_cycle_planted_fails(source: Path) -> None:
    plant(source, "mdx/report_facts.py", "from mdx.report import ReportConfig")
    assert cycles(source) == [["mdx.report", "mdx.report_explain", "mdx.report_facts", "mdx.report_plots", "mdx.report_render"]]
