"""Loading JSON Lines and CSV: validation, line numbers, all-or-nothing, reject files, idempotence."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest

from comity.nodes.errors import LoadRejected
from comity.nodes.ingest import load_file, load_records
from comity.nodes.schema import DataCategory, Selector, SelectorType
from comity.nodes.store import RecordStore
from comity.nodes.synthetic import generate


def _account(rid: str, email: str, **extra: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "account_id": f"ACC-{rid}",
        "provider": "Maple Mobile",
        "full_name": "Test Person",
        "email": email,
        "phone": "(416) 555-0123",
        "subject_nationality": "CA",
        "subject_residence": "CA",
    }
    fields.update(extra)
    return {
        "record_id": rid,
        "record_type": "subscriber_account",
        "observed_at": "2025-01-02T03:04:05Z",
        "fields": fields,
    }


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_jsonl_loads_normalised_and_idempotent(store: RecordStore, tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "in.jsonl", [_account("a1", "Alice@Example.org"), "", _account("a2", "b@example.org")]
    )
    report = load_file(store, path, dataset="ca", region="CA")
    assert (report.rows, report.loaded, report.replaced, report.rejected) == (2, 2, 0, 0)
    [record] = store.lookup([Selector(SelectorType.PHONE, "+14165550123")], limit=1)
    assert record.fields["email"] == "alice@example.org"
    assert record.fields["created_at"] == "2025-01-02T03:04:05Z"
    assert record.category is DataCategory.SUBSCRIBER and record.dataset == "ca"
    again = load_file(store, path, dataset="ca", region="CA")
    assert (again.loaded, again.replaced) == (2, 2)
    assert sum(c.records for c in store.stats()) == 2


def test_bad_rows_are_reported_by_line_and_nothing_is_committed(store: RecordStore, tmp_path: Path) -> None:
    rows: list[object] = [_account(f"a{i}", f"p{i}@example.org") for i in range(1500)]
    rows[2] = _account("x", "not-an-email")
    rows[1400] = "{not json"
    rows.append({"record_id": "y", "record_type": "spaceship", "fields": {}})
    rows.append(_account("z", "z@example.org", shoe_size="44"))
    path = _write_jsonl(tmp_path / "in.jsonl", rows)
    with pytest.raises(LoadRejected) as caught:
        load_file(store, path, region="CA")
    lines = [e.line for e in caught.value.errors]
    assert lines == [3, 1401, 1501, 1502]
    text = str(caught.value)
    assert "line 3: fields.email" in text and "line 1501: record_type" in text and "shoe_size" in text
    assert "not-an-email" not in text
    # The first 1000 good rows were written before the bad ones were seen: rolled back all the same.
    assert store.check().records == 0


def test_skip_bad_commits_good_rows_and_writes_rejects(store: RecordStore, tmp_path: Path) -> None:
    bad = _account("b", "b@example.org", subject_nationality="ca")
    path = _write_jsonl(tmp_path / "in.jsonl", [_account("a", "a@example.org"), bad, "[1, 2]"])
    report = load_file(store, path, skip_bad=True, region="CA")
    assert (report.rows, report.loaded, report.rejected) == (3, 1, 2)
    assert report.reject_file == tmp_path / "in.jsonl.rejects.jsonl"
    # Rejected rows hold personal data: only the operator may read them, whatever the umask.
    assert report.reject_file.stat().st_mode & 0o777 == 0o600
    rejects = [json.loads(line) for line in report.reject_file.read_text().splitlines()]
    assert [
        (r["line"], json.loads(r["row"])["record_id"] if r["line"] == 2 else r["row"]) for r in rejects
    ] == [
        (2, "b"),
        (3, "[1, 2]"),
    ]
    assert "country code" in rejects[0]["reason"]
    assert store.get("a") is not None and store.get("b") is None


def test_csv_loads_with_header_columns_as_fields(store: RecordStore, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["record_id", "record_type", "account_id", "ip_address", "connected_at", "port"])
        w.writerow(["c1", "ip_connection_log", "ACC-1", "2001:DB8::1", "2025-05-01T10:00:00+02:00", "443"])
        w.writerow(["c2", "ip_connection_log", "ACC-1", "192.0.2.9", "2025-05-02T10:00:00Z", ""])
        w.writerow(["c3", "ip_connection_log", "ACC-1", "192.0.2.300", "2025-05-02T10:00:00Z", "1"])
        w.writerow(["c4", "ip_connection_log", "ACC-1"])
    with pytest.raises(LoadRejected) as caught:
        load_file(store, path)
    assert [(e.line, "ip_address" in e.reason or "cells" in e.reason) for e in caught.value.errors] == [
        (4, True),
        (5, True),
    ]
    report = load_file(store, path, skip_bad=True)
    assert report.loaded == 2
    [c1] = store.lookup([Selector(SelectorType.IP_ADDRESS, "2001:db8::1")])
    assert c1.fields["connected_at"] == "2025-05-01T08:00:00Z"
    assert "port" not in store.get("c2").fields  # type: ignore[union-attr]


def test_observed_at_must_agree_with_the_timestamp_field(store: RecordStore) -> None:
    row = _account("a", "a@example.org", created_at="2024-01-01T00:00:00Z")
    with pytest.raises(LoadRejected, match="observed_at: differs"):
        load_records(store, [row], region="CA")
    del row["observed_at"]
    load_records(store, [row], region="CA")
    assert store.get("a").observed_at.year == 2024  # type: ignore[union-attr]


def test_progress_is_reported_up_to_the_whole_file(store: RecordStore, tmp_path: Path) -> None:
    path = generate("US", 20, 1).write_jsonl(tmp_path / "us.jsonl")
    calls: list[tuple[int, int, int]] = []
    report = load_file(store, path, progress=lambda *a: calls.append(a), progress_every=50)
    size = path.stat().st_size
    assert calls[-1] == (report.rows, size, size)
    assert [c[0] for c in calls[:-1]] == list(range(50, report.rows + 1, 50))
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(calls))


def test_dataset_names_are_checked(store: RecordStore, tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "in.jsonl", [])
    with pytest.raises(Exception, match="dataset name"):
        load_file(store, path, dataset="x'; --")


def test_control_characters_are_refused_except_line_breaks_in_text(store: RecordStore) -> None:
    with pytest.raises(LoadRejected, match=r"fields\.full_name: contains control characters"):
        load_records(store, [_account("a", "a@example.org", full_name="Eve\x00")], region="CA")
    content = {
        "record_id": "m1",
        "record_type": "message_content",
        "fields": {
            "message_id": "<1@x>",
            "sent_at": "2025-01-01T00:00:00Z",
            "body": "line one\r\n\tline two",
        },
    }
    load_records(store, [content])
    assert store.get("m1").fields["body"] == "line one\r\n\tline two"  # type: ignore[union-attr]
    content["record_id"], content["fields"]["body"] = "m2", "bell\x07"  # type: ignore[index]
    with pytest.raises(LoadRejected, match=r"fields\.body: contains control characters"):
        load_records(store, [content])


def test_sql_in_field_values_is_stored_as_text(store: RecordStore) -> None:
    name = "Robert'); DROP TABLE comity_records; --"
    load_records(
        store, [_account("a1", "a@example.org", full_name=name), _account("a2", "b@example.org")], region="CA"
    )
    assert store.get("a1").fields["full_name"] == name  # type: ignore[union-attr]
    assert store.check().records == 2
