"""A hostile "Anthropic API" on loopback: raw answer bodies, so they can hold what the JSON
standard forbids but Python's ``json`` reads (``NaN``, ``Infinity``) and numbers no API sends."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

#: path -> the raw JSON text to answer with, or a function of the query that returns it.
Route = str | Callable[[dict[str, list[str]]], str]


class HostileApi:
    """Answers 200 with the raw body routed for a path, 404 for any other; records requests."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                parts = urlsplit(self.path)
                api.requests.append((self.command, self.path))
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                route = api.routes.get(parts.path)
                if route is None:
                    status, text = 404, '{"type":"error","error":{"type":"not_found_error"}}'
                else:
                    status = 200
                    text = route if isinstance(route, str) else route(parse_qs(parts.query))
                body = text.encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("date", formatdate(usegmt=True))
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def hostile_api() -> Iterator[HostileApi]:
    """A ``HostileApi`` for the block (a test module's fixture yields it)."""
    api = HostileApi()
    try:
        yield api
    finally:
        api.close()
