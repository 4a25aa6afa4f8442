"""`mdx serve`: a static file server for an exported web page, cross-origin isolated.

LiteRT.js's threaded WebAssembly needs SharedArrayBuffer, which a browser grants only to a
cross-origin isolated page: the server must send `Cross-Origin-Opener-Policy: same-origin` and
`Cross-Origin-Embedder-Policy: require-corp`. `python -m http.server` sends neither, so the page
runs there too, single-threaded. Files are served as they are on disk, never cached (a re-export
must show at once), and only from the folder.
"""

from __future__ import annotations

import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from mdx.errors import ArtifactError
from mdx.model_contract import CONFIG_NAME

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class IsolatedHandler(SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler plus the isolation headers, the wasm MIME type, and quiet logs."""

    extensions_map: ClassVar[dict[str, str]] = {**SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm",
                      ".js": "text/javascript", ".map": "application/json", ".json": "application/json"}

    def end_headers(self) -> None:
        for name, value in ISOLATION_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not printed: the terminal shows the one line saying where the page is."""


def make_server(folder: Path, *, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A bound (not yet serving) server for `folder`; call `serve_forever()` on it.

    Raises:
        ArtifactError: `folder` is not a page written by mdx export web, or the port cannot be bound.
    """
    folder = Path(folder)
    if not (folder / "index.html").is_file() or not (folder / CONFIG_NAME).is_file():
        raise ArtifactError(f"{folder} has no index.html and {CONFIG_NAME}: pass a folder written by mdx export web")
    handler = functools.partial(IsolatedHandler, directory=str(folder))
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise ArtifactError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port, or 0 for a free one") from None
