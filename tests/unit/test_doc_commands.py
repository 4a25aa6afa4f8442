"""Every command the README and docs/ show runs as written: `mdx …` names a command and only options it
has, `python -m runtime …` parses with the harness's own parser, `make X` is a Makefile target and
`benchmarks/x.py --flag` names a script that defines that flag. The cheap ones (predict on the bundled
ImageNet model) are run. No TensorFlow: the CLI is inspected, not invoked, except for the run below."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from tests.unit.test_docs import doc_pages

REPO = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
PREFIXES = ("mdx ", "python -m runtime ", "make ", ".venv/bin/python benchmarks/", "python benchmarks/")


@dataclass(frozen=True)
class DocCommand:
    page: str
    line: int
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {shlex.join(self.argv)}"


def code_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of fenced code blocks and of 4-space indented blocks after a blank line."""
    lines, inside, indented, previous_blank = [], False, False, True
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.strip()):
            inside = not inside
            continue
        indented = line.startswith("    ") and (previous_blank or indented)
        if inside or indented:
            lines.append((number, line))
        previous_blank = not line.strip()
    return lines


def doc_commands(page: Path) -> list[DocCommand]:
    """The commands of one page, continuation lines joined, comments and `.venv/bin/` dropped."""
    commands, pending, start = [], "", 0
    for number, line in code_lines(page.read_text(encoding="utf-8")):
        text = line.strip()
        text = text.removeprefix("run: ")  # a GitHub Actions step in a YAML block
        if not pending:
            text = text.removeprefix("$ ").replace(".venv/bin/mdx ", "mdx ", 1)
            if not text.startswith(PREFIXES):
                continue
            start = number
        pending += " " + text
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        argv = tuple(shlex.split(pending, comments=True))
        commands.append(DocCommand(str(page.relative_to(REPO)), start, argv))
        pending = ""
    return commands + table_commands(page)


def table_commands(page: Path) -> list[DocCommand]:
    """Commands in code spans of table rows: the results pages give each figure's command so."""
    commands = []
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("|"):
            continue
        for span in CODE_SPAN.findall(line):
            if span.startswith("benchmarks/") and ".py" in span:
                span = "python " + span
            # an invocation names a file or folder; `mdx check --threshold 0.5` names an option
            if span.startswith(PREFIXES) and any("/" in word for word in span.split()[2:]):
                commands.append(DocCommand(str(page.relative_to(REPO)), number, tuple(shlex.split(span))))
    return commands


ALL_COMMANDS = [command for page in doc_pages() if page.name != "cli.md" for command in doc_commands(page)]


def option_problems(command, words: list[str]) -> list[str]:
    """Options in `words` the command lacks, and positional counts it cannot take."""
    problems, positional, known = [], 0, {"--help": None}
    usage = any(mark in word for word in words for mark in "[]|")  # `[--runs N]`, `a | b`: options only
    words = [word.strip("[]") for word in words if word.strip("[]|")]
    for param in command.params:
        for name in (*param.opts, *param.secondary_opts):
            known[name] = param
    index = 0
    while index < len(words):
        word = words[index]
        if word.startswith("-") and len(word) > 1:
            name = word.split("=", 1)[0]
            param = known.get(name)
            if name == "--help":
                pass
            elif param is None:
                problems.append(f"unknown option {name}")
            elif param.param_type_name == "option" and not param.is_flag and not param.count and "=" not in word:
                index += 1  # its value
        else:
            positional += 1
        index += 1
    if usage:
        return problems
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    unlimited = any(p.nargs == -1 for p in arguments)
    if not unlimited and positional > sum(p.nargs for p in arguments):
        problems.append(f"{positional} positional arguments; the command takes {len(arguments)}")
    required = sum(1 for p in arguments if p.required)
    if positional < required:
        problems.append(f"{positional} positional arguments; the command needs {required}")
    return problems


def resolve_mdx(argv: tuple[str, ...]):
    """The command `argv` names (typer's own click), the words after its name, and its path."""
    from mdx.cli import app

    command = typer.main.get_command(app)
    words, path = list(argv[1:]), "mdx"
    while hasattr(command, "get_command") and words and not words[0].startswith("-"):
        sub = command.get_command(command.make_context("mdx", [], resilient_parsing=True), words[0])
        if sub is None:
            raise AssertionError(f"`{path}` has no command {words[0]!r}")
        command, path, words = sub, f"{path} {words[0]}", words[1:]
    return command, words, path


def test_the_docs_show_commands() -> None:
    """The extraction is not vacuous: the README's quickstart and the board page's harness commands are found."""
    pages = {c.page for c in ALL_COMMANDS}
    assert {"README.md", "docs/board.md", "docs/ci.md", "benchmarks/README.md"} <= pages, pages
    assert len([c for c in ALL_COMMANDS if c.argv[0] == "mdx"]) >= 20


@pytest.mark.parametrize("command", [c for c in ALL_COMMANDS if c.argv[0] == "mdx"], ids=str)
def test_mdx_command_in_docs_exists_with_its_options(command: DocCommand) -> None:
    resolved, words, path = resolve_mdx(command.argv)
    problems = option_problems(resolved, words)
    assert not problems, f"{command}: `{path}`: " + "; ".join(problems)


@pytest.mark.parametrize("command", [c for c in ALL_COMMANDS if c.argv[:3] == ("python", "-m", "runtime")], ids=str)
def test_runtime_command_in_docs_parses(command: DocCommand) -> None:
    from mdx.runtime.cli import build_parser

    try:
        build_parser().parse_args(list(command.argv[3:]))
    except SystemExit as exit_:  # the harness's parser exits 2 with its message on stderr
        raise AssertionError(f"{command}: the harness's parser refuses it (exit {exit_.code})") from None


@pytest.mark.parametrize("command", [c for c in ALL_COMMANDS if c.argv[0] == "make"], ids=str)
def test_make_target_in_docs_exists(command: DocCommand) -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for target in command.argv[1:]:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE), f"{command}: no Makefile target {target}"


@pytest.mark.parametrize("command", [c for c in ALL_COMMANDS if c.argv[0] in ("python", ".venv/bin/python")
                                     and c.argv[1].startswith("benchmarks/")], ids=str)
def test_benchmark_command_in_docs_names_a_script_with_its_flags(command: DocCommand) -> None:
    script = REPO / command.argv[1]
    assert script.is_file(), f"{command}: no script {command.argv[1]}"
    source = script.read_text(encoding="utf-8") + (REPO / "benchmarks" / "common.py").read_text(encoding="utf-8")
    words = list(command.argv[2:])
    if "--" in words:  # what follows a bare -- is the script's pass-through (e.g. recipe_sweep's mdx train flags)
        passed, words = words[words.index("--") + 1:], words[:words.index("--")]
        resolved, mdx_words, _ = resolve_mdx(("mdx", "train", "DATA", *passed))
        assert not option_problems(resolved, mdx_words), f"{command}: {option_problems(resolved, mdx_words)}"
    for word in words:
        if word.startswith("--"):
            flag = word.split("=", 1)[0].strip("[]")
            assert f'"{flag}"' in source or f"'{flag}'" in source, f"{command}: {command.argv[1]} has no {flag}"


def test_a_broken_command_is_caught() -> None:
    """The checks fail on what they must: an option a command lacks, a command that does not exist."""
    resolved, words, _ = resolve_mdx(("mdx", "check", "a.tflite", "--reference", "b.tflite", "d/", "--max-drop=1"))
    assert option_problems(resolved, words) == ["unknown option --max-drop"]
    with pytest.raises(AssertionError, match="no command 'evaluat'"):
        resolve_mdx(("mdx", "evaluat", "m.tflite", "d/"))


def test_the_imagenet_predict_in_the_docs_runs_as_written() -> None:
    """docs/evaluate.md's predict on the bundled ImageNet model, run from the repository root."""
    [command] = [c for c in ALL_COMMANDS if c.argv[:2] == ("mdx", "predict") and any(a.endswith("imagenet_labels.txt") for a in c.argv)]
    mdx = Path(sys.executable).with_name("mdx")
    done = subprocess.run([str(mdx), *command.argv[1:]], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, f"{command}: exit {done.returncode}: {done.stderr[-500:]}"
    assert "military uniform" in done.stdout, done.stdout
