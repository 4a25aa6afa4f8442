"""`mdx report` and `mdx report --merge`: files, embedded figures, numbers equal to the run's JSON, one-line errors.

The run is built once per module without TensorFlow: the golden .tflite models stand in for the
converted variants (fp32, int8, and a pruned int8 under prune-0.5/), and the real stage functions
write their files (evaluate on the golden inputs, bench at 1 and 2 threads, records with the
compatibility check of the real converter). The `tf` cases run the real tiny pipeline once per module:
it must end by writing its own report, which the same tests then check against its files.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mdx.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "fixtures" / "golden"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LABELS = ["NORMAL", "PNEUMONIA"]
PREPROCESSING = {"size": 16, "mean": [127.5] * 3, "std": [127.5] * 3}
VARIANTS = {"fp32": "binary_fp32", "int8": "binary_int8", "prune-0.5/int8": "binary_uint8"}


def _one_line_error(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert "Traceback" not in output and len(lines) == 1 and lines[0].startswith("error:"), output
    return lines[0]


def _variant(run: Path, name: str, golden: str, inputs: Path) -> None:
    from mdx.convert.compat import compatibility_report
    from mdx.convert.flatbuffer import read_tflite
    from mdx.records import write_record
    from mdx.runtime.bench import BenchConfig, bench
    from mdx.runtime.evaluate import EvaluateConfig, evaluate

    root = run / name.split("/")[0] if "/" in name else run
    short = name.rpartition("/")[2]
    folder = root / "convert" / short
    folder.mkdir(parents=True)
    model = folder / "model.tflite"
    shutil.copy(GOLDEN / golden / "model.tflite", model)
    (folder / "labels.txt").write_text("\n".join(LABELS) + "\n")
    write_record(folder, stage="convert", config={}, inputs=[], outputs=[model, folder / "labels.txt"],
                 extra={"variant": short, "labels": LABELS, "preprocessing": PREPROCESSING,
                        "compatibility": compatibility_report(read_tflite(model))})
    evaluate(model, inputs, EvaluateConfig(n_boot=50, threshold=0.5)).save(root / "evaluate" / short)
    bench(model, BenchConfig(threads=(1, 2), runs=5, warmup=1)).save(root / "bench" / f"{short}.json")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with fp32, int8 and prune-0.5/int8, evaluated and timed, and a training history."""
    from mdx.records import write_record

    run = tmp_path_factory.mktemp("report") / "run"
    (run / "train").mkdir(parents=True)
    with np.load(GOLDEN / "golden.npz") as golden:
        inputs = run.parent / "golden_eval.npz"
        np.savez(inputs, inputs=golden["inputs"], labels=np.array([0, 1] * 4))
    for name, golden_name in VARIANTS.items():
        _variant(run, name, golden_name, inputs)
    history = {"loss": [0.7, 0.5, 0.4], "val_loss": [0.72, 0.6, 0.55], "accuracy": [0.5, 0.7, 0.8],
               "val_accuracy": [0.5, 0.6, 0.7]}
    (run / "train" / "history.json").write_text(json.dumps(history))
    write_record(run / "train", stage="train", config={"backbone": "golden", "alpha": 1.0, "input_size": 16},
                 inputs=[], outputs=[run / "train" / "history.json"],
                 extra={"labels": LABELS, "preprocessing": PREPROCESSING, "threshold": 0.5,
                        "threshold_rule": "fixed", "data": {"counts": {"test": 8}}})
    return run


@pytest.fixture(scope="module")
def report(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report_out")
    result = runner.invoke(app, ["report", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "report: saved" in result.output
    return out


@pytest.fixture(scope="module")
def pipeline_run(tiny_pipeline) -> Path:
    """The real tiny pipeline (TensorFlow; tests/conftest.py): it must end by writing its own report into the run folder."""
    _, out, output = tiny_pipeline
    assert f"report: saved {out / 'report.html'}" in output.replace("\n", "")
    return out


@pytest.fixture(params=["golden", pytest.param("pipeline", marks=pytest.mark.tf)])
def case(request: pytest.FixtureRequest) -> tuple[Path, Path, list[str]]:
    """(run folder, report folder, expected variants): the golden run, and the real tiny pipeline run."""
    if request.param == "golden":
        return request.getfixturevalue("run_dir"), request.getfixturevalue("report"), list(VARIANTS)
    run = request.getfixturevalue("pipeline_run")
    return run, run, ["fp32", "int8"]


class _Page(HTMLParser):
    """Collects every <img src>, every external reference, and each table's rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.external: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        for key in ("href", "src"):
            if tag != "img" and values.get(key):
                self.external.append(str(values[key]))
        if tag == "table":
            self._table = values.get("id") or "?"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None


def _page(report: Path) -> _Page:
    page = _Page()
    page.feed((report / "report.html").read_text(encoding="utf-8"))
    page.close()
    return page


def _rows(page: _Page, table: str) -> dict[tuple[str, ...], dict[str, str]]:
    header, *body = page.tables[table]
    key = 2 if table == "latency" else 1
    return {tuple(row[:key]): dict(zip(header, row)) for row in body}


def test_report_run_writes_markdown_html_and_figures(case: tuple[Path, Path, list[str]]) -> None:
    _, report, _ = case
    assert (report / "report.md").is_file() and (report / "report.html").is_file()
    markdown = (report / "report.md").read_text()
    for link in ("report_figures/roc.png", "report_figures/latency_vs_accuracy.png",
                 "report_figures/size_vs_accuracy.png", "report_figures/training_curves_train.png"):
        assert link in markdown and (report / link).is_file()


def test_report_html_every_image_is_embedded_png(case: tuple[Path, Path, list[str]]) -> None:
    run, report, variants = case
    page = _page(report)
    grid = (run / "explain" / "record.json").is_file()  # the pipeline's explain stage: FP32 beside INT8 maps
    assert len(page.images) == 4 + len(variants) + grid  # 2 Pareto, ROC, curves, one confusion matrix per variant
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG_MAGIC)
    assert page.external == []  # no stylesheet, script or link outside the page


def test_report_variant_table_numbers_equal_json_files(case: tuple[Path, Path, list[str]]) -> None:
    run_dir, report, variants = case
    page = _page(report)
    rows = _rows(page, "variants")
    assert [key[0] for key in rows] == variants
    fp32_eval = json.loads((run_dir / "evaluate" / "fp32" / "evaluation.json").read_text())["metrics"]
    fp32_bytes = json.loads((run_dir / "convert" / "fp32" / "record.json").read_text())["outputs"][0]["bytes"]
    for name in variants:
        root, short = (run_dir / name.split("/")[0], name.split("/")[1]) if "/" in name else (run_dir, name)
        record = json.loads((root / "convert" / short / "record.json").read_text())
        metrics = json.loads((root / "evaluate" / short / "evaluation.json").read_text())["metrics"]
        row = rows[(name,)]
        model = record["outputs"][0]
        assert row["size (MB)"] == f"{model['bytes'] / 1e6:.3f}"
        assert row["gzip (MB)"] == f"{model['gzip_bytes'] / 1e6:.3f}"
        assert row["size x FP32"] == f"{model['bytes'] / fp32_bytes:.3f}"
        lo, hi = metrics["accuracy"]["ci95"]
        assert row["accuracy [95% CI]"] == f"{metrics['accuracy']['value']:.4f} [{lo:.4f}, {hi:.4f}]"
        assert row["Δ AUC"] == f"{metrics['auc']['value'] - fp32_eval['auc']['value']:+.4f}"
        for timing in json.loads((root / "bench" / f"{short}.json").read_text())["timings"]:
            latency = _rows(page, "latency")[(name, str(timing["threads"]))]
            assert latency["p50 (ms)"] == f"{timing['p50_ms']:.3f}" and latency["p90 (ms)"] == f"{timing['p90_ms']:.3f}"
        loads = _rows(page, "compatibility")[(name,)]
        for runtime, verdict in record["compatibility"]["runtimes"].items():
            assert loads[runtime] == "yes" if verdict["loads"] else loads[runtime].startswith("no: ")


def test_report_run_without_bench_says_so(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    shutil.rmtree(run / "bench")
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    markdown = (run / "report.md").read_text()
    assert "no bench/fp32.json -- latency not measured" in markdown
    assert "| fp32 | — | — | — | — | not timed |" in markdown
    assert "Not timed at 1 thread(s): fp32, int8." in markdown  # the plot keeps prune-0.5/int8, which was timed


def test_report_bench_of_another_model_left_out(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    bench_file = run / "bench" / "int8.json"
    data = json.loads(bench_file.read_text())
    data["model"]["sha256"] = "0" * 64
    bench_file.write_text(json.dumps(data))
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert "bench of a different model file" in (run / "report.md").read_text()


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p])
def test_report_bad_run_dir_one_line_error_exit_1(tmp_path: Path, make) -> None:
    result = runner.invoke(app, ["report", str(make(tmp_path))])
    assert result.exit_code == 1
    assert "pass the --out folder of `mdx pipeline`" in _one_line_error(result.output)


def test_report_existing_report_without_overwrite_refused(report: Path, run_dir: Path) -> None:
    result = runner.invoke(app, ["report", str(run_dir), "--out", str(report)])
    assert result.exit_code == 1
    assert "report.md already exists; pass --overwrite" in _one_line_error(result.output)


def test_report_two_run_dirs_without_merge_usage_error(run_dir: Path) -> None:
    result = runner.invoke(app, ["report", str(run_dir), str(run_dir)])
    assert result.exit_code == 2
    assert "takes one RUN_DIR, got 2; pass --merge" in _one_line_error(result.output)


def _result(folder: Path, host: str, p50: float) -> None:
    folder.mkdir(parents=True)
    (folder / "roofline.json").write_text(json.dumps({
        "benchmark": "roofline", "machine": {"hostname": host, "cpu": f"{host} cpu", "cores": 4},
        "versions": {"numpy": "2"}, "figures": {"int8": {"1t": {"p50_ms": p50}}}}))


def test_report_merge_two_machines_one_table(tmp_path: Path) -> None:
    _result(tmp_path / "results" / "pi5", "pi5", 41.5)
    _result(tmp_path / "results" / "vm", "vm", 3.25)
    result = runner.invoke(app, ["report", "--merge", str(tmp_path / "results"), "--out", str(tmp_path / "merged")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "merged" / "merged.md").read_text()
    assert "| benchmark | figure | pi5 | vm |" in text
    assert "| roofline | int8.1t.p50_ms | 41.5 | 3.25 |" in text


def test_report_merge_no_results_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--merge", str(tmp_path)])
    assert result.exit_code == 1
    assert "no benchmark results (*.json)" in _one_line_error(result.output)


def test_pareto_front_dominated_point_excluded() -> None:
    from mdx.report_plots import pareto_front

    # (latency, accuracy): the third is slower and less accurate than the first
    assert pareto_front([(3.0, 0.84), (7.0, 0.88), (8.0, 0.80)]) == [0, 1]


def test_report_modules_import_without_tensorflow(tmp_path: Path) -> None:
    code = ("import sys\nclass B:\n def find_spec(self, n, p=None, t=None):\n"
            "  if n.split('.')[0] in ('tensorflow', 'tf_keras', 'keras'): raise ImportError(n)\n"
            "sys.meta_path.insert(0, B())\nimport mdx.report, mdx.report_plots, mdx.report_render, mdx.report_merge\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_report_html_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed: run .ci/install-report-tools.sh to render report.html headless")
    shot = tmp_path / "report.png"
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,2000",
                           f"--screenshot={shot}", (report / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000  # a blank page compresses to a few KB
