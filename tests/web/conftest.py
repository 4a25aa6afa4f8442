"""Fixtures for the exported web page: runs over the golden models, exported pages, and headless Chromium.

Chromium is Debian's (.ci/install-report-tools.sh), driven over the DevTools protocol with the
`websockets` client: the page is served from 127.0.0.1 by `mdx serve`'s server, images are fed
through its real file input (DOM.setFileInputFiles), and every request of the page and of its
workers is recorded (Network.requestWillBeSent, workers attached with Target.setAutoAttach).

LiteRT.js comes from `npm ci --prefix web` (make web-deps). Without it, or without chromium, these
tests skip, naming the fix; with MDX_REQUIRE_WEB_TOOLS=1 (CI, after the installers) they fail.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LITERTJS = ROOT / "web" / "node_modules" / "@litertjs"
GOLDEN_MODELS = ROOT / "tests" / "fixtures" / "golden"
XRAYS = ROOT / "data" / "chest_xray" / "test"
LABELS = ["NORMAL", "PNEUMONIA"]
PREPROCESSING = {"size": 16, "mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5]}
THRESHOLD = 0.55  # between the golden models' probabilities, so the recorded rule decides
# page name -> (variant, golden model): "int8" is the quantized model with uint8 io (LiteRT.js reads no int8)
PAGES = {"fp32": ("fp32", "binary_fp32"), "int8": ("int8", "binary_uint8")}


def require_tools() -> str:
    """Chromium's path; skip (fail under MDX_REQUIRE_WEB_TOOLS=1) when it or LiteRT.js is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    problem = None
    if chromium is None:
        problem = "chromium not installed: run .ci/install-report-tools.sh"
    elif not (LITERTJS / "core" / "package.json").is_file():
        problem = f"{LITERTJS} not found: run `make web-deps` (npm ci --prefix web; .ci/install-web-tools.sh installs npm)"
    else:
        try:
            import websockets  # noqa: F401
        except ImportError:
            problem = "the websockets package is missing: pip install -e '.[dev]'"
    if problem:
        if os.environ.get("MDX_REQUIRE_WEB_TOOLS") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    return str(chromium)


def make_run(run: Path, variant: str, model: Path) -> Path:
    """RUN/convert/<variant>/ and RUN/train/record.json as mdx convert and mdx train write them."""
    # the Android checks' run builders, loaded by path: two conftest modules cannot import each other
    spec = importlib.util.spec_from_file_location("mdx_android_fixtures", ROOT / "tests" / "android" / "conftest.py")
    android = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(android)  # type: ignore[union-attr]
    android.make_variant(run, variant, model, PREPROCESSING, LABELS)
    android.make_train_record(run, PREPROCESSING, LABELS, THRESHOLD, XRAYS)
    return run


class Server:
    """`mdx serve`'s server on a free loopback port, in a thread, recording each request path."""

    def __init__(self, folder: Path) -> None:
        from mdx import serve

        self.paths: list[str] = []
        paths = self.paths

        class Recording(serve.IsolatedHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                super().do_GET()

        self.httpd = serve.make_server(folder, port=0)
        self.httpd.RequestHandlerClass = functools.partial(Recording, directory=str(folder))  # type: ignore[assignment]
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Browser:
    """Headless Chromium with one page, over the DevTools protocol (flat sessions for workers)."""

    def __init__(self, chromium: str, profile: Path) -> None:
        from websockets.sync.client import connect

        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--disable-component-update", "--no-first-run",
             "--disable-default-apps", "--disable-sync", f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and len(port_file.read_text().split()) >= 2):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port within 30 s")
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            target = next(t for t in json.load(reply) if t["type"] == "page")
        self._connection = connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self.ws = self._connection.__enter__()
        self.next_id = 0
        self.requests: list[str] = []
        self.exceptions: list[str] = []
        self.console: list[str] = []
        self.crashed = False
        for method in ("Network.enable", "Runtime.enable", "Page.enable", "Inspector.enable"):
            self.send(method)
        self.send("Target.setAutoAttach", autoAttach=True, waitForDebuggerOnStart=True, flatten=True)

    def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            self.exceptions.append(json.dumps(params["exceptionDetails"])[:500])
        elif method == "Runtime.consoleAPICalled":
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method in ("Inspector.targetCrashed", "Target.targetCrashed"):
            self.crashed = True
        elif method == "Target.attachedToTarget":  # a worker: record its requests too, then let it run
            session = params["sessionId"]
            self.send("Network.enable", session=session, wait=False)
            self.send("Runtime.runIfWaitingForDebugger", session=session, wait=False)

    def send(self, method: str, *, session: str | None = None, wait: bool = True, timeout: float = 60,
             **params: Any) -> dict[str, Any]:
        self.next_id += 1
        ident = self.next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        if not wait:
            return {}
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == ident and "sessionId" not in reply:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._event(reply)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {expression}; console: {self.console[-5:]}")

    def open(self, url: str) -> str:
        """Navigate and wait until the page says ready or error; returns that state."""
        self.send("Page.navigate", url=url)
        return self.wait_for("document.readyState === 'complete' && ['ready', 'error'].includes("
                             "document.body.dataset.state) && document.body.dataset.state")

    def feed(self, paths: list[Path], timeout: float = 60) -> dict[str, Any]:
        """Choose `paths` in the page's file input; wait for every one to show a result or an error."""
        before = self.evaluate("document.querySelectorAll('#results tbody tr, #errors li[data-file]').length")
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector="#files")["nodeId"]
        self.send("DOM.setFileInputFiles", nodeId=node, files=[str(p) for p in paths])
        self.wait_for("document.body.dataset.pending === '0' && document.querySelectorAll("
                      f"'#results tbody tr, #errors li[data-file]').length >= {before + len(paths)}", timeout)
        return self.page()

    def page(self) -> dict[str, Any]:
        """Results (file, class index, probabilities, ms), error lines, state and facts as the page shows them."""
        return self.evaluate("""({
            results: [...document.querySelectorAll('#results tbody tr')].map(r => ({
                file: r.dataset.file, index: Number(r.dataset.classIndex),
                probabilities: JSON.parse(r.dataset.probabilities), ms: Number(r.dataset.ms),
                input_sha256: r.dataset.inputSha256})),
            errors: [...document.querySelectorAll('#errors li')].map(li => li.textContent),
            state: document.body.dataset.state, facts: document.getElementById('facts').textContent,
            disclaimer: document.getElementById('disclaimer').textContent,
            isolated: self.crossOriginIsolated })""")

    def heatmaps(self) -> list[dict[str, Any]]:
        """The page's occlusion maps (window.mdxHeatmaps), each map as a flat row-major list."""
        return self.evaluate("window.mdxHeatmaps.map(h => ({file: h.file, target: h.target, base: h.base, "
                             "map: Array.from(h.map), runs: h.runs, ms: h.ms}))")

    def close(self) -> None:
        try:
            if hasattr(self, "ws"):
                self._connection.__exit__(None, None, None)
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="session")
def web():
    """This module, so tests can use its constants and helpers (test modules cannot import a conftest)."""
    return sys.modules[__name__]


@pytest.fixture(scope="session")
def chromium() -> str:
    return require_tools()


@pytest.fixture(scope="session")
def pages(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One exported page per PAGES entry (shared; tests that change a page copy it first)."""
    from mdx.export_web import WebExportConfig, export_web

    base = tmp_path_factory.mktemp("web")
    out = {}
    for name, (variant, model) in PAGES.items():
        run = make_run(base / f"run_{name}", variant, GOLDEN_MODELS / model / "model.tflite")
        out[name] = export_web(run, WebExportConfig(variant=variant, out=base / name, litertjs=LITERTJS)).out
    return out


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[Browser]:
    session = Browser(chromium, tmp_path / "profile")
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def serve() -> Iterator[Any]:
    """serve(folder) -> a running Server; every server is shut down after the test."""
    servers: list[Server] = []

    def start(folder: Path) -> Server:
        servers.append(Server(folder))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
