"""Loading records from JSON Lines or CSV files into a :class:`~comity.nodes.store.RecordStore`.

Every row is validated against the store's schema (:func:`comity.nodes.validate.parse_record`).
By default a file loads in one transaction: if any row is bad, nothing is committed and
:class:`~comity.nodes.errors.LoadRejected` lists the bad rows by line number. With
``skip_bad=True`` the good rows are committed and each bad row goes to a reject file, as JSON
Lines ``{"line": N, "reason": "...", "row": "<the input line>"}``. Loading a record id again
replaces the record, so loading the same file twice leaves the store as loading it once.

JSON Lines: one object per line (blank lines are skipped), as described in
:mod:`comity.nodes.synthetic`. CSV: a header row with ``record_id``, ``record_type``,
optionally ``observed_at``, and one column per field name; empty cells are absent fields.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from comity.core.errors import InvalidArgument
from comity.nodes.errors import InvalidRecord, LoadRejected, RowError
from comity.nodes.schema import Record
from comity.nodes.store import RecordStore, RecordWriter
from comity.nodes.validate import parse_record

__all__ = ["LoadReport", "Progress", "load_file", "load_records"]

#: ``progress(rows_read, bytes_read, bytes_total)``, called every ``progress_every`` rows and at the end.
Progress = Callable[[int, int, int], None]

MAX_LINE_BYTES = 1 << 20
_BATCH = 1000
_ANALYZE_AFTER = 10_000
_DATASET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CSV_META = ("record_id", "record_type", "observed_at", "category")


@dataclass
class LoadReport:
    """What a load did."""

    source: str
    dataset: str
    rows: int = 0
    loaded: int = 0
    replaced: int = 0
    rejected: int = 0
    reject_file: Path | None = None
    errors: list[RowError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    raw: dict[str, object] | None  # None: the line could not be decoded
    text: str
    problem: str = ""
    size: int = 0


def _jsonl_rows(stream: IO[bytes]) -> Iterator[_Row]:
    for number, data in enumerate(stream, start=1):
        size = len(data)
        if len(data) > MAX_LINE_BYTES:
            yield _Row(number, None, "", f"line longer than {MAX_LINE_BYTES} bytes", size)
            continue
        try:
            text = data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            yield _Row(number, None, "", "not UTF-8", size)
            continue
        if not text.strip():
            yield _Row(number, {}, text, "blank", size)
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield _Row(number, None, text, f"not JSON ({exc.msg})", size)
            continue
        if not isinstance(obj, dict):
            yield _Row(number, None, text, "not a JSON object", size)
            continue
        yield _Row(number, obj, text, "", size)


def _csv_rows(stream: IO[bytes]) -> Iterator[_Row]:
    text_stream = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    reader = csv.reader(text_stream)
    try:
        header = next(reader)
    except StopIteration:
        return
    except (UnicodeDecodeError, csv.Error) as exc:
        yield _Row(1, None, "", f"unreadable header ({type(exc).__name__})", 0)
        return
    for name in ("record_id", "record_type"):
        if name not in header:
            yield _Row(1, None, ",".join(header), f"header has no {name} column", 0)
            return
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except (UnicodeDecodeError, csv.Error) as exc:
            yield _Row(reader.line_num, None, "", f"unreadable row ({type(exc).__name__})", 0)
            return
        line, size = reader.line_num, sum(len(c) + 1 for c in cells)
        text = json.dumps(cells, ensure_ascii=False)
        if len(cells) != len(header):
            yield _Row(line, None, text, f"{len(cells)} cells, the header has {len(header)}", size)
            continue
        row = dict(zip(header, cells, strict=True))
        raw: dict[str, object] = {k: row[k] for k in _CSV_META if row.get(k)}
        raw["fields"] = {k: v for k, v in row.items() if k not in _CSV_META and v != ""}
        yield _Row(line, raw, text, "", size)


class _Loader:
    def __init__(self, store: RecordStore, report: LoadReport, region: str, skip_bad: bool) -> None:
        self.store = store
        self.report = report
        self.region = region
        self.skip_bad = skip_bad
        self.pending: list[Record] = []
        self.rejects: list[tuple[RowError, str]] = []

    def take(self, row: _Row, writer: RecordWriter) -> None:
        if row.problem == "blank":
            return
        self.report.rows += 1
        try:
            if row.raw is None:
                raise InvalidRecord(row.problem)
            record = parse_record(row.raw, self.store.schema, region=self.region, dataset=self.report.dataset)
        except InvalidRecord as exc:
            error = RowError(row.line, exc.message)
            self.report.errors.append(error)
            self.rejects.append((error, row.text))
            return
        # Once a row is bad and bad rows are not skipped, nothing will be committed: stop writing.
        if self.skip_bad or not self.report.errors:
            self.pending.append(record)
            if len(self.pending) >= _BATCH:
                self.flush(writer)

    def flush(self, writer: RecordWriter) -> None:
        if self.pending and (self.skip_bad or not self.report.errors):
            self.report.replaced += writer.put(self.pending)
            self.report.loaded += len(self.pending)
        self.pending = []


def _default_reject_path(path: Path) -> Path:
    return path.with_name(path.name + ".rejects.jsonl")


def load_file(
    store: RecordStore,
    path: Path | str,
    *,
    format: Literal["jsonl", "csv"] | None = None,
    dataset: str = "default",
    region: str = "",
    skip_bad: bool = False,
    reject_file: Path | str | None = None,
    progress: Progress | None = None,
    progress_every: int = 1000,
) -> LoadReport:
    """Load ``path`` (JSON Lines or CSV, from ``format`` or the file suffix) into ``store``.

    ``dataset`` names the dataset the records join; ``region`` is the node's country (the
    default region of phone numbers). Raises LoadRejected (nothing committed) when a row is bad
    and ``skip_bad`` is false; otherwise bad rows go to ``reject_file`` (default:
    ``<path>.rejects.jsonl``). Returns a LoadReport.
    """
    path = Path(path)
    if not _DATASET.fullmatch(dataset):
        raise InvalidArgument("dataset name must be 1-64 characters from A-Z a-z 0-9 . _ -")
    fmt = format or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    report = LoadReport(source=str(path), dataset=dataset)
    loader = _Loader(store, report, region, skip_bad)
    total = path.stat().st_size
    done = 0
    with path.open("rb") as stream, store.writer() as writer:
        rows = _csv_rows(stream) if fmt == "csv" else _jsonl_rows(stream)
        for row in rows:
            loader.take(row, writer)
            done += row.size
            if progress is not None and row.problem != "blank" and report.rows % progress_every == 0:
                progress(report.rows, min(done, total), total)
        loader.flush(writer)
        if report.errors and not skip_bad:
            # Raising inside the writer rolls the whole transaction back.
            raise LoadRejected(str(path), report.errors)
    if store.backend == "postgresql" and report.loaded >= _ANALYZE_AFTER:
        # Fresh statistics let PostgreSQL keep using the indexes for lookups and later reloads.
        store.analyze()
    if progress is not None:
        progress(report.rows, total, total)
    report.rejected = len(report.errors)
    if loader.rejects:
        report.reject_file = _write_rejects(
            Path(reject_file) if reject_file else _default_reject_path(path), loader
        )
    return report


def _write_rejects(path: Path, loader: _Loader) -> Path:
    # Rejected rows are records about people: readable by the node's operator only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.chmod(path, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for error, text in loader.rejects:
            out.write(
                json.dumps({"line": error.line, "reason": error.reason, "row": text}, ensure_ascii=False)
            )
            out.write("\n")
    return path


def load_records(
    store: RecordStore,
    rows: Iterable[Mapping[str, object]],
    *,
    dataset: str = "default",
    region: str = "",
) -> LoadReport:
    """Load in-memory rows (e.g. :attr:`SyntheticData.records`) in one transaction.

    Rows are numbered from 1 in errors; raises LoadRejected (nothing committed) on a bad row.
    """
    if not _DATASET.fullmatch(dataset):
        raise InvalidArgument("dataset name must be 1-64 characters from A-Z a-z 0-9 . _ -")
    report = LoadReport(source="<records>", dataset=dataset)
    loader = _Loader(store, report, region, skip_bad=False)
    with store.writer() as writer:
        for number, raw in enumerate(rows, start=1):
            loader.take(_Row(number, dict(raw), ""), writer)
        loader.flush(writer)
        if report.errors:
            raise LoadRejected(report.source, report.errors)
    return report
