"""A read-only web viewer of the transparency log, for legal officers.

``comity audit serve`` starts it on loopback by default. It reads the log database, verifies it
against the federation's log and witness keys (at most every ``verify_every`` seconds), and shows
entries with the same filters as ``comity audit show``. It never shows selector openings and
has no way to change anything: GET only, no forms that post, no cookies.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from comity.audit.events import Event, decode_event
from comity.audit.store import LogStore
from comity.core.errors import ComityError

__all__ = ["LogViewer", "make_server"]

PAGE = 200
_FILTERS = ("kind", "agency", "investigator", "order_id", "decision", "node")


class LogViewer:
    """What the pages show: entries (filtered, paged) and the latest verification result."""

    def __init__(self, url: str, verify: Callable[[], str], *, verify_every: float = 30.0) -> None:
        self._url = url
        self._verify = verify
        self._every = verify_every
        self._status: tuple[float, str, bool] = (0.0, "", False)
        self._lock = threading.Lock()

    def status(self) -> tuple[str, bool]:
        """A sentence about the log's verification, and whether it passed (cached briefly)."""
        with self._lock:
            checked, text, ok = self._status
            if time.monotonic() - checked > self._every:
                try:
                    text, ok = self._verify(), True
                except ComityError as err:
                    text, ok = err.message, False
                self._status = (time.monotonic(), text, ok)
            return text, ok

    def entries(self, filters: dict[str, str], *, start: int) -> Iterator[tuple[int, Event]]:
        """Entries from index ``start`` matching every filter, at most one page."""
        store = LogStore.open(self._url, create=False)
        try:
            shown = 0
            for index, _leaf, data in store.iter_entries(store.tree_size()):
                if index < start:
                    continue
                event = decode_event(data)
                fields = {"kind": event.kind, **asdict(event)}
                if all(str(fields.get(k, "")) == v for k, v in filters.items()):
                    yield index, event
                    shown += 1
                    if shown >= PAGE:
                        return
        finally:
            store.close()


def _cell(value: Any) -> str:
    if isinstance(value, tuple | list):
        value = ", ".join(str(v) for v in value)
    return html.escape(str(value))


def _page(viewer: LogViewer, query: dict[str, list[str]]) -> str:
    filters = {k: v[0] for k, v in query.items() if k in _FILTERS and v and v[0]}
    start = int(query.get("start", ["0"])[0] or 0)
    status, ok = viewer.status()
    rows = []
    for index, event in viewer.entries(filters, start=start):
        data = asdict(event)
        data.pop("selector_commitments", None)
        data.pop("node_signature", None)
        detail = "; ".join(
            f"{k}: {_cell(v)}" for k, v in data.items() if k not in ("at", "query_id") and v != ""
        )
        rows.append(
            f"<tr><td>{index}</td><td>{_cell(event.at)}</td><td>{_cell(event.kind)}</td>"
            f"<td>{_cell(getattr(event, 'query_id', ''))}</td><td>{detail}</td></tr>"
        )
    inputs = "".join(
        f'<label>{k} <input name="{k}" value="{html.escape(filters.get(k, ""))}"></label> ' for k in _FILTERS
    )
    more = urlencode({**filters, "start": start + PAGE})
    colour = "#1a7f37" if ok else "#cf222e"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Comity transparency log</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}
.status{{color:{colour};font-weight:bold}}</style>
</head><body><h1>Comity transparency log</h1>
<p class="status">{html.escape(status)}</p>
<form method="get">{inputs}<button>Filter</button></form>
<table><tr><th>#</th><th>time</th><th>event</th><th>query</th><th>detail</th></tr>
{"".join(rows)}</table>
<p><a href="?{html.escape(more)}">next entries</a></p>
<p>Read-only. Selectors appear in the log only as salted commitments and are not shown here.</p>
</body></html>"""


def make_server(viewer: LogViewer, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for ``viewer``; call ``serve_forever()`` (``server_address`` has the port)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urlparse(self.path)
            if parsed.path != "/":
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            try:
                body = _page(viewer, parse_qs(parsed.query)).encode()
            except (ComityError, ValueError) as exc:
                self.send_error(HTTPStatus.BAD_REQUEST, explain=str(getattr(exc, "message", exc)))
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # requests are not logged: query strings may name an investigator or an order

    return ThreadingHTTPServer((host, port), Handler)
