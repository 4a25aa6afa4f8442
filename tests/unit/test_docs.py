"""The docs stay true: docs/cli.md is what typer generates from the app today, and every relative link and every
result file (benchmarks/results/…json) a page cites exists. No TensorFlow: `mdx --help` imports none."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI_PAGE = REPO / "docs" / "cli.md"
REGENERATE = "typer mdx.cli utils docs --name mdx --output docs/cli.md"
RESULTS = "benchmarks/results"

# [text](target) and [text]: target; a target up to the first space or closing parenthesis
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
# benchmarks/results/<machine>/<name>.json, or <machine>/<name>.json for a machine folder (vm-…)
RESULT_FILE = re.compile(r"(?:benchmarks/results/|(?<![\w/.-]))(vm-[A-Za-z0-9_]+/[A-Za-z0-9_.-]+\.json)\b")


def doc_pages(root: Path = REPO) -> list[Path]:
    """The Markdown a user reads: the README, docs/, and the README of each folder (test fixtures excepted)."""
    pages = [root / "README.md", *sorted((root / "docs").glob("**/*.md"))]
    for folder in ("benchmarks", "quantize", "android_demo", "tests/reliability", "data"):
        pages += sorted((root / folder).glob("**/README.md")) if folder == "data" else [root / folder / "README.md"]
    return [page for page in pages if page.is_file()]


def broken_references(page: Path, root: Path = REPO) -> list[str]:
    """Relative links and cited result files of `page` that do not exist, as `page: target` strings.

    Args:
        page: a Markdown file.
        root: the repository root, against which benchmarks/results paths resolve.

    Returns:
        One string per missing target, in the order they appear.
    """
    text = page.read_text(encoding="utf-8")
    missing = []
    for match in LINK.finditer(text):
        target = (match.group(1) or match.group(2)).split("#", 1)[0]
        if not target or re.match(r"[a-z][a-z0-9+.-]*:", target):  # an anchor on the page, http:, mailto:
            continue
        if not (page.parent / target).exists():
            missing.append(f"{page.relative_to(root)}: link {target}")
    cited = [m.group(1) for span in CODE_SPAN.findall(text) for m in RESULT_FILE.finditer(span)]
    cited += [m.group(1) for link in LINK.finditer(text) for m in RESULT_FILE.finditer(link.group(0))]
    for relative in dict.fromkeys(cited):
        if not (root / RESULTS / relative).is_file():
            missing.append(f"{page.relative_to(root)}: result file {RESULTS}/{relative}")
    return missing


def generate_cli_docs(output: Path, columns: int = 80) -> str:
    """Run typer's Markdown generator on the app into `output` at a fixed terminal width; its text."""
    env = {**os.environ, "COLUMNS": str(columns), "TERMINAL_WIDTH": str(columns), "NO_COLOR": "1"}
    command = [sys.executable, "-m", "typer", "mdx.cli", "utils", "docs", "--name", "mdx", "--output", str(output)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return output.read_text(encoding="utf-8")


@pytest.mark.parametrize("columns", [80, 200])
def test_cli_page_equals_generated_reference(tmp_path: Path, columns: int) -> None:
    generated = generate_cli_docs(tmp_path / "cli.md", columns)
    page = CLI_PAGE.read_text(encoding="utf-8") if CLI_PAGE.is_file() else ""
    import typer

    assert page == generated, (f"docs/cli.md differs from the help of the commands (typer {typer.__version__}, "
                               f"width {columns}); regenerate it from the repository root: {REGENERATE}")


def test_cli_page_names_every_command() -> None:
    from mdx.cli import app

    page = CLI_PAGE.read_text(encoding="utf-8")
    names = [command.name or command.callback.__name__.replace("_", "-") for command in app.registered_commands]
    assert names and all(f"## `mdx {name}`" in page for name in names)


def test_doc_pages_cite_only_existing_files() -> None:
    pages = doc_pages()
    assert REPO / "README.md" in pages and CLI_PAGE in pages
    missing = [line for page in pages for line in broken_references(page)]
    assert not missing, "missing link targets or result files:\n" + "\n".join(missing)


def test_readme_under_150_lines_links_into_docs() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 150
    assert "make demo" in text and "make test" in text and "](docs/" in text


def test_broken_references_missing_link_and_result_file_reported(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "here.md").write_text("x")
    (tmp_path / RESULTS / "vm-avx2").mkdir(parents=True)
    (tmp_path / RESULTS / "vm-avx2" / "demo.json").write_text("{}")
    page = tmp_path / "docs" / "page.md"
    page.write_text("[ok](here.md#a) [web](https://example.org) [gone](../nowhere.md)\n"
                    "`benchmarks/results/vm-avx2/demo.json` `vm-avx2/missing.json` "
                    "[r](../benchmarks/results/vm-avx9/x.json)\n")
    assert broken_references(page, tmp_path) == [
        "docs/page.md: link ../nowhere.md",
        "docs/page.md: link ../benchmarks/results/vm-avx9/x.json",
        "docs/page.md: result file benchmarks/results/vm-avx2/missing.json",
        "docs/page.md: result file benchmarks/results/vm-avx9/x.json",
    ]
