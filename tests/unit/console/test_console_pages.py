"""The console's pages through Starlette's test client: sign-in, CSRF, paging links, filters, errors."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bench.console_log import BuiltLog, query_receipt
from comity.audit.receipt_trust import FederationTrust
from comity.core.errors import InvalidArgument
from comity.core.issuer import load_issuer_key, mint_token
from comity.sdk.console.app import Console, make_app
from comity.sdk.console.auth import Sessions
from comity.sdk.console.mirror import Mirror
from comity.sdk.console.server import BindPolicy, check_bind
from comity.sdk.console.sources import DatabaseSource
from comity.sdk.console.sync import BackgroundSync
from comity.sdk.console.trust import ConsoleTrust
from comity.sdk.console.verifier import MirrorVerifier
from comity.sdk.console.words import load_rule_texts
from comity.sdk.demo.setup import DemoFederation


@pytest.fixture(scope="module")
def rule_texts() -> dict[str, list]:  # type: ignore[type-arg]
    return load_rule_texts()


@pytest.fixture
def console(demo: DemoFederation, log_copy: Path, tmp_path: Path, rule_texts: dict) -> Console:  # type: ignore[type-arg]
    trust = ConsoleTrust.load(demo.layout.federation_file)
    mirror = Mirror(tmp_path / "mirror.db", country_of=trust.country_of)
    source = DatabaseSource(f"sqlite:///{log_copy}", quorum=trust.quorum, log_key=trust.log_key)
    sync = BackgroundSync(MirrorVerifier(mirror, source, log_key=trust.log_key, quorum=trust.quorum))
    sync.run_round()
    return Console(
        mirror=mirror,
        sync=sync,
        sessions=Sessions(trust.federation, audience="comity-gateway"),
        log_origin=trust.log_key.name,
        rule_texts=rule_texts,
        start_sync=False,
        receipt_trust=FederationTrust(trust.federation),
    )


@pytest.fixture
def client(console: Console) -> Iterator[TestClient]:
    with TestClient(make_app(console), base_url="http://127.0.0.1") as c:
        yield c


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def sign_in(client: TestClient, token: str) -> None:
    page = client.get("/signin")
    response = client.post("/signin", data={"csrf": _csrf(page.text), "token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text


def officer_token(demo: DemoFederation) -> str:
    return demo.officer_tokens["us.fbi"].read_text().strip()


def test_every_page_needs_a_session(client: TestClient) -> None:
    for path in ("/", "/entries", "/entries/1", "/queries/q-000001", "/orders/order-00001"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/signin")


def test_an_officer_signs_in_with_their_token_and_gets_a_strict_cookie(
    client: TestClient, demo: DemoFederation
) -> None:
    page = client.get("/signin")
    assert '<meta name="viewport"' in page.text
    csrf = _csrf(page.text)
    response = client.post(
        "/signin", data={"csrf": csrf, "token": officer_token(demo)}, follow_redirects=False
    )
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "comity_console_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    overview = client.get("/")
    assert overview.status_code == 200 and "Verified" in overview.text and "<svg" in overview.text
    assert "default-src 'none'" in overview.headers["content-security-policy"]


@pytest.mark.parametrize("which", ["investigator", "forged", "expired", "garbage"])
def test_sign_in_refuses_what_is_not_a_valid_officer_token(
    client: TestClient, demo: DemoFederation, which: str
) -> None:
    agency = demo.layout.agencies["us.fbi"]
    now = datetime.now(UTC)
    tokens = {
        "investigator": (demo.directory / "tokens" / "us.fbi.jwt").read_text().strip(),
        "forged": officer_token(demo)[:-6] + "AAAAAA",
        "expired": mint_token(
            load_issuer_key(agency.issuer_key), issuer=agency.issuer, subject=agency.legal_officer,
            audience=agency.audience, ttl=timedelta(minutes=5), now=now - timedelta(hours=1),
        ),
        "garbage": "not a token",
    }  # fmt: skip
    page = client.get("/signin")
    response = client.post("/signin", data={"csrf": _csrf(page.text), "token": tokens[which]})
    assert response.status_code == 401
    assert "comity_console_session" not in response.headers.get("set-cookie", "")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_forms_without_the_csrf_token_are_refused(client: TestClient, demo: DemoFederation) -> None:
    client.get("/signin")
    response = client.post("/signin", data={"csrf": "wrong", "token": officer_token(demo)})
    assert response.status_code == 400 and "expired or came from another site" in response.text
    sign_in(client, officer_token(demo))
    assert client.post("/signout", data={"csrf": "wrong"}).status_code == 400
    assert client.get("/").status_code == 200  # still signed in
    home = client.get("/").text
    assert client.post("/signout", data={"csrf": _csrf(home)}, follow_redirects=False).status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_paging_links_walk_a_filter_without_repeats(client: TestClient, demo: DemoFederation) -> None:
    sign_in(client, officer_token(demo))
    seen: list[int] = []
    url = "/entries?kind=Decision&decision=deny"
    pages = 0
    while url:
        html = client.get(url).text
        pages += 1
        assert f"page {pages} of" in html
        seen += [int(i) for i in re.findall(r'data-index="(\d+)"', html)]
        older = re.search(r'rel="next" href="([^"]+)"', html)
        url = older.group(1).replace("&amp;", "&") if older else ""
        if pages == 1:
            assert 'rel="prev"' not in html
    assert len(seen) == len(set(seen)) and seen == sorted(seen, reverse=True)
    total = int(re.search(r"(\d+) entries match", html).group(1))  # type: ignore[union-attr]
    assert total == len(seen) and pages > 2
    back = re.search(r'rel="prev" href="([^"]+)"', html)
    assert back is not None
    previous = client.get(back.group(1).replace("&amp;", "&")).text
    assert f"page {pages - 1} of" in previous


def test_no_match_filters_and_bad_input(client: TestClient, demo: DemoFederation) -> None:
    sign_in(client, officer_token(demo))
    assert "No entries match" in client.get("/entries?agency=nobody").text
    bad = client.get("/entries?since=yesterday")
    assert bad.status_code == 400 and "not a date" in bad.text and "Traceback" not in bad.text
    assert client.get("/entries?before=x").status_code == 400
    missing = client.get("/entries/99999999")
    assert missing.status_code == 404 and "no verified entry" in missing.text
    assert client.get("/no/such/page").status_code == 404
    assert client.get("/queries/nothing-like-it").status_code == 404


def test_an_entry_shows_its_rules_in_words_and_its_query_story(
    client: TestClient, demo: DemoFederation, console: Console
) -> None:
    sign_in(client, officer_token(demo))
    denied = console.mirror.page(
        __import__("comity.sdk.console.mirror", fromlist=["Filters"]).Filters.parse({"rule": "SERIOUS_CRIME"})
    ).rows[0]
    html = client.get(f"/entries/{denied.idx}").text
    assert "Serious crime" in html and "Legal basis:" in html and "2523" in html
    allowed = console.mirror.page(
        __import__("comity.sdk.console.mirror", fromlist=["Filters"]).Filters.parse({"kind": "disclosed"})
    ).rows[0]
    story = client.get(f"/queries/{allowed.query_id}").text
    for words in ("Gateway decision", "Forwarded to a node", "Node decision", "Disclosure"):
        assert words in story
    assert 'href="/orders/order-' in story


def test_a_tampered_mirror_marks_the_entry_on_the_pages(
    client: TestClient, demo: DemoFederation, console: Console
) -> None:
    sign_in(client, officer_token(demo))
    db = sqlite3.connect(console.mirror.path)
    db.execute(
        "UPDATE entry_data SET data = CAST(replace(CAST(data AS TEXT), 'Z\"', 'Z \"') AS BLOB)"
        " WHERE idx = 321"
    )
    db.commit()
    db.close()
    console.sync._check_every = 1
    console.sync.run_round()
    assert console.sync.status.failure_entry == 321
    html = client.get("/entries?before=330").text
    assert "Verification FAILED" in html and 'class="bad" data-index="321"' in html
    detail = client.get("/entries/321").text
    assert "does not match the log" in detail


def test_the_console_refuses_a_non_loopback_address_without_tls_and_consent(tmp_path: Path) -> None:
    assert check_bind(BindPolicy("127.0.0.1")) == []
    assert check_bind(BindPolicy("::1")) == []
    with pytest.raises(InvalidArgument, match="not a loopback address"):
        check_bind(BindPolicy("0.0.0.0"))
    with pytest.raises(InvalidArgument, match="without TLS"):
        check_bind(BindPolicy("0.0.0.0", allow_remote=True))
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    warnings = check_bind(BindPolicy("0.0.0.0", cert, key, allow_remote=True))
    assert warnings and "reachable from other machines" in warnings[0]
    loud = check_bind(BindPolicy("192.0.2.1", allow_remote=True, unsafe_without_tls=True))
    assert any("WITHOUT TLS" in w for w in loud)


def test_the_transparency_report_counts_and_exports(
    client: TestClient, demo: DemoFederation, console: Console
) -> None:
    import json

    from comity.sdk.console.report import offence_classifier
    from comity.sdk.console.words import shipped_bundles

    console.offence_class = offence_classifier(set(console.mirror.country_of.values()), shipped_bundles())
    sign_in(client, officer_token(demo))
    page = client.get("/report")
    assert page.status_code == 200 and "Queries decided" in page.text
    exported = client.get("/report.json")
    assert "attachment" in exported.headers["content-disposition"]
    report = json.loads(exported.text)
    decided = sum(d["queries"] for d in report["decisions"])
    assert (
        decided
        == console.mirror.page(
            __import__("comity.sdk.console.mirror", fromlist=["Filters"]).Filters.parse({"kind": "decision"})
        ).total
    )
    assert all(d["offence_class"] != "UNKNOWN" for d in report["decisions"])
    csv = client.get("/report.csv")
    assert csv.headers["content-type"].startswith("text/csv") and "decisions," in csv.text
    assert "investigator" not in csv.text.lower()  # counts per agency, never per investigator


@pytest.fixture(scope="module")
def receipt_file(demo: DemoFederation, built: BuiltLog, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A refused query's receipt, as the SDK exports it."""
    import asyncio

    from comity.sdk.receipts import export_receipt

    receipt = asyncio.run(query_receipt(demo, built.path, built.denied[0]))
    return export_receipt(receipt, tmp_path_factory.mktemp("receipt") / "receipt.json")


def _check(client: TestClient, text: str = "", *, upload: bytes | None = None) -> str:
    csrf = _csrf(client.get("/receipt").text)
    files = {"file": ("receipt.json", upload, "application/json")} if upload is not None else None
    response = client.post("/receipt", data={"csrf": csrf, "receipt": text}, files=files)
    assert response.status_code == 200, response.text
    return response.text


def _verify_on_the_command_line(path: Path, demo: DemoFederation) -> tuple[int, str]:
    from typer.testing import CliRunner

    from comity.sdk.cli.main import app

    result = CliRunner().invoke(
        app, ["audit", "verify-receipt", str(path), "-f", str(demo.layout.federation_file)]
    )
    return result.exit_code, result.output


def test_a_good_receipt_is_valid_and_names_its_entry_and_checkpoint(
    client: TestClient, demo: DemoFederation, built: BuiltLog, receipt_file: Path, console: Console
) -> None:
    sign_in(client, officer_token(demo))
    html = _check(client, receipt_file.read_text())
    assert "This receipt is valid." in html
    assert f"query &#39;{built.denied[0]}&#39; refused under the agreement" in html
    assert f"checkpoint {built.size} of {console.log_origin}" in html
    assert "Witness quorum reached" in html
    index = console.mirror.query_entries(built.denied[0])[0].idx
    assert f'<a href="/entries/{index}">{index}</a>' in html and "the same entry" in html
    # An uploaded file gets the same verdict; and the command line agrees.
    assert "This receipt is valid." in _check(client, upload=receipt_file.read_bytes())
    code, _ = _verify_on_the_command_line(receipt_file, demo)
    assert code == 0


def test_a_tampered_receipt_is_invalid_in_words(
    client: TestClient, demo: DemoFederation, receipt_file: Path, tmp_path: Path
) -> None:
    import base64
    import json

    sign_in(client, officer_token(demo))
    data = json.loads(receipt_file.read_text())
    entry = base64.b64decode(data["receipt"]["entries"][0]["entry"])
    data["receipt"]["entries"][0]["entry"] = base64.b64encode(entry.replace(b'Z"', b'Z "', 1)).decode()
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    html = _check(client, tampered.read_text())
    assert "This receipt does NOT verify" in html and "This receipt is valid" not in html
    assert "receipt entry 0 is not in the log at the receipt&#39;s checkpoint" in html
    assert "RECEIPT_INCLUSION" in html
    code, output = _verify_on_the_command_line(tampered, demo)
    assert code != 0 and "receipt entry 0 is not in the log" in output

    # Without the witnesses' cosignatures it is not valid yet (the command line refuses it too).
    del data["receipt"]["cosignatures"]
    data["receipt"]["entries"][0]["entry"] = base64.b64encode(entry).decode()
    html = _check(client, json.dumps(data))
    assert "Not yet valid" in html and "quorum pending" in html and "This receipt is valid" not in html


@pytest.mark.parametrize(
    "text",
    ["this is not json", "[1, 2]", '{"format": "something-else"}', '{"format": "comity-receipt/v2"}',
     '{"format": "comity-receipt/v2", "receipt": {"queryId": 5, "entries": "x"}}',
     '{"format": "comity-receipt/v2", "receipt": {}}'],
)  # fmt: skip
def test_garbage_is_not_a_receipt_and_says_so(client: TestClient, demo: DemoFederation, text: str) -> None:
    sign_in(client, officer_token(demo))
    html = _check(client, text)
    assert "This receipt is valid" not in html and "Traceback" not in html
    assert "not a Comity receipt" in html or "does NOT verify" in html


def test_the_receipt_form_needs_its_csrf_token_and_a_receipt(
    client: TestClient, demo: DemoFederation
) -> None:
    sign_in(client, officer_token(demo))
    assert client.post("/receipt", data={"csrf": "wrong", "receipt": "{}"}).status_code == 400
    empty = client.post("/receipt", data={"csrf": _csrf(client.get("/receipt").text), "receipt": " "})
    assert empty.status_code == 400 and "Paste a receipt" in empty.text


def test_failed_sign_ins_are_limited_per_client_with_a_worded_429(
    client: TestClient, demo: DemoFederation, console: Console
) -> None:
    attempts = console.sign_in_limit.attempts
    for n in range(attempts - 1):
        response = client.post("/signin", data={"csrf": _csrf(client.get("/signin").text), "token": "nope"})
        assert response.status_code == 401
        assert f"{attempts - 1 - n} more attempt" in response.text
    last = client.post("/signin", data={"csrf": _csrf(client.get("/signin").text), "token": "nope"})
    assert last.status_code == 429 and "Too many failed sign-ins" in last.text
    assert int(last.headers["retry-after"]) > 0 and "Traceback" not in last.text
    # While paused, even a valid token is refused (the pause is per address, not per token).
    valid = client.post(
        "/signin", data={"csrf": _csrf(client.get("/signin").text), "token": officer_token(demo)}
    )
    assert valid.status_code == 429 and "sign-in is paused for it until" in valid.text
    assert client.get("/", follow_redirects=False).status_code == 303
    console.sign_in_limit.succeeded("testclient")
    sign_in(client, officer_token(demo))
    assert client.get("/").status_code == 200


def test_the_overview_and_report_draw_charts_with_their_tables(
    client: TestClient, demo: DemoFederation
) -> None:
    sign_in(client, officer_token(demo))
    home = client.get("/").text
    assert home.count('<svg class="chart" role="img"') == 5
    assert home.count("the numbers as a table</summary>") == 5
    assert "Emergency orders and their review deadlines" in home and ">now</text>" in home
    assert "Witness status" in home and "minutes old" in home
    assert re.search(r'<th scope="row">[a-z]+-node</th><td>\d{4}-\d\d-\d\d', home)
    report = client.get("/report").text
    assert report.count('<svg class="chart" role="img"') == 4
    assert "Queries decided by offence class" in report and "Answers and failures by node" in report
