"""The console in a real browser: Debian's headless Chromium, a real console process, a real log.

The log holds thousands of entries written by the log code under the demo federation's keys and
cosigned by its witnesses; the console process is ``comity audit console`` as an officer runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.console_log import BuiltLog, build_console_log, query_receipt
from comity.sdk.demo.setup import DemoFederation, build_demo_federation, free_ports

CHROMIUM = Path("/usr/bin/chromium")
_COMITY = Path(sys.executable).with_name("comity")

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"CI must run the browser tests: {CHROMIUM} is missing (.ci/run installs it)")
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFederation:
    return build_demo_federation(Path(tmp_path_factory.mktemp("federation")), people=5, seed=11)


@pytest.fixture(scope="module")
def built(demo: DemoFederation, tmp_path_factory: pytest.TempPathFactory) -> BuiltLog:
    path = Path(tmp_path_factory.mktemp("log")) / "audit.db"
    # In a thread of its own: Playwright's sync API runs an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, build_console_log(demo, path, queries=1500, seed=2)).result()


class Served:
    def __init__(self, base: str, mirror: Path, process: subprocess.Popen[bytes]) -> None:
        self.base, self.mirror, self.process = base, mirror, process


@pytest.fixture(scope="module")
def served(
    demo: DemoFederation, built: BuiltLog, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    (port,) = free_ports(1)
    mirror = Path(tmp_path_factory.mktemp("mirror")) / "mirror.db"
    log = Path(tmp_path_factory.mktemp("logs")) / "console.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(_COMITY), "audit", "console", "-f", str(demo.layout.federation_file),
             "--db", str(built.path), "--mirror", str(mirror), "--port", str(port),
             "--interval", "1", "--mirror-check-every", "1"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/signin", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the console did not start: {log.read_text()}") from None
                time.sleep(0.2)
        yield Served(base, mirror, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(served: Served, demo: DemoFederation, browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    sign_in(tab, served, demo)
    yield tab
    context.close()


def sign_in(tab: Page, served: Served, demo: DemoFederation) -> None:
    tab.goto(served.base + "/")
    expect(tab).to_have_url(re.compile(r"/signin"))
    tab.get_by_label("Your token").fill(demo.officer_tokens["ca.rcmp"].read_text().strip())
    tab.get_by_role("button", name="Sign in").click()
    expect(tab.get_by_role("heading", name="Overview")).to_be_visible()
    # The first sync round verifies the whole log in the background; wait for it.
    for _ in range(60):
        # Verified, and the overview (rebuilt in the background) counts up to the verified size.
        if tab.locator(".status.ok").count() and not tab.locator(".stale").count():
            return
        time.sleep(0.5)
        tab.reload()
    raise AssertionError(tab.locator(".status").inner_text())


def test_sign_in_shows_the_verified_overview_with_charts(page: Page, built: BuiltLog) -> None:
    status = page.locator(".status").inner_text()
    assert f"Verified up to size {built.size}" in status
    assert page.locator("svg.chart").count() == 5
    for chart in page.locator("svg.chart").all():
        assert chart.get_attribute("role") == "img"
        title, desc = (chart.get_attribute("aria-labelledby") or "").split()
        assert page.locator(f"#{title}").text_content() and page.locator(f"#{desc}").text_content()
    # Each chart's numbers as a table, opened from the keyboard.
    summary = page.get_by_text("Gateway decisions per day, last 30 days: the numbers as a table")
    summary.focus()
    page.keyboard.press("Enter")
    table = page.get_by_role("table", name="Gateway decisions per day, last 30 days")
    expect(table).to_be_visible()
    assert table.locator("tbody tr").count() == 30
    expect(page.get_by_role("heading", name="Witness status")).to_be_visible()
    expect(page.locator("#witnesses ~ p, #witnesses + p").first).to_contain_text("minutes old")
    assert page.locator('meta[name="viewport"]').count() == 1
    assert page.get_by_role("navigation", name="Main").is_visible()
    expect(page.get_by_role("link", name="order-emergency-1")).to_be_visible()


def test_a_wrong_token_is_refused_in_words(browser: Browser, served: Served) -> None:
    context = browser.new_context()
    tab = context.new_page()
    tab.goto(served.base + "/signin")
    tab.get_by_label("Your token").fill("eyJhbGciOiJIUzI1NiJ9.e30.c2ln")
    tab.get_by_role("button", name="Sign in").click()
    expect(tab.get_by_role("alert")).to_contain_text("algorithm")
    assert tab.locator("text=Traceback").count() == 0
    context.close()


def _indices(page: Page) -> list[int]:
    return [
        int(i)
        for i in page.locator("tbody tr[data-index]").evaluate_all("rs => rs.map(r => r.dataset.index)")
    ]


def test_filters_and_paging_forwards_and_back_without_repeats(page: Page) -> None:
    page.get_by_role("link", name="Entries").click()
    page.get_by_label("What").select_option("decision")
    page.get_by_label("Outcome").select_option("DENY")
    page.get_by_label("Agency").fill("CA.RCMP")  # case-insensitive
    page.get_by_role("button", name="Filter").click()
    page.wait_for_load_state()  # the filtered page, not the one the click left
    count = page.locator(".count").inner_text()
    total = int(count.split()[0])
    assert "page 1 of" in count and total > 100
    seen: list[int] = []
    pages = [_indices(page)]
    seen += pages[0]
    while page.get_by_role("link", name="Older →").count():
        page.get_by_role("link", name="Older →").click()
        page.wait_for_load_state()
        pages.append(_indices(page))
        seen += pages[-1]
        expect(page.locator(".pager")).to_contain_text(f"Page {len(pages)} of")
    assert len(seen) == len(set(seen)) == total
    assert seen == sorted(seen, reverse=True)
    assert page.get_by_role("link", name="Older →").count() == 0  # no next past the end
    page.get_by_role("link", name="← Newer").click()
    page.wait_for_load_state()
    assert _indices(page) == pages[-2]
    page.get_by_role("link", name="← Newer").click()
    page.wait_for_load_state()
    assert _indices(page) == pages[-3]
    for row in page.locator("tbody tr").all()[:5]:
        assert "ca.rcmp" in row.inner_text() and "refused" in row.inner_text()


def test_a_query_by_id_tells_its_whole_story(page: Page, built: BuiltLog) -> None:
    page.goto(page.url.split("/", 3)[0] + "//" + page.url.split("/", 3)[2] + "/entries")
    page.get_by_label("Query id").fill(built.query_ids[0].upper())
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"query_id=" + re.escape(built.query_ids[0].upper())))
    # Rows are counted once the filtered page has loaded, not during its navigation.
    expect(page.locator("tbody tr").first).to_be_visible()
    page.locator("tbody tr").first.get_by_role("link", name=built.query_ids[0]).click()
    expect(page.get_by_role("heading", name=f"Query {built.query_ids[0]}")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile(r"Gateway decision"))).to_be_visible()
    page.get_by_role("link", name="order-emergency-1").first.click()
    expect(page.get_by_role("heading", name="Legal order order-emergency-1")).to_be_visible()


def test_no_match_and_not_found_pages(page: Page, served: Served) -> None:
    page.goto(served.base + "/entries?agency=nobody.here")
    expect(page.get_by_text("No entries match these filters.")).to_be_visible()
    response = page.goto(served.base + "/no/such/page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    response = page.goto(served.base + "/entries?since=not-a-date")
    assert response is not None and response.status == 400
    expect(page.get_by_text("is not a date")).to_be_visible()


def test_a_tablet_sees_the_pages_without_sideways_scrolling(
    browser: Browser, served: Served, demo: DemoFederation
) -> None:
    context = browser.new_context(viewport={"width": 768, "height": 1024}, is_mobile=True, has_touch=True)
    tab = context.new_page()
    sign_in(tab, served, demo)
    for path in ("/", "/entries", "/entries/3"):
        tab.goto(served.base + path)
        width = tab.evaluate("document.documentElement.scrollWidth")
        assert width <= 768, f"{path} is {width} px wide"
    context.close()


def test_the_report_is_shown_and_exported(page: Page, served: Served, built: BuiltLog) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Report").click()
    expect(page.get_by_role("heading", name="Transparency report")).to_be_visible()
    for _ in range(60):  # the report is rebuilt in the background after each verified size
        if not page.locator(".stale").count():
            break
        time.sleep(0.5)
        page.reload()
    expect(page.get_by_text(f"over the {built.size} verified entries")).to_be_visible()
    assert page.locator("svg.chart").count() == 4
    expect(page.get_by_role("img", name=re.compile("^Queries decided by offence class"))).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV").click()
    saved = download.value.path()
    assert download.value.suggested_filename == "transparency-report.csv"
    assert Path(saved).read_text().startswith("table,")
    with page.expect_download() as download:
        page.get_by_role("link", name="JSON").click()
    assert download.value.suggested_filename == "transparency-report.json"
    exported = json.loads(Path(download.value.path()).read_text())
    assert sum(d["queries"] for d in exported["decisions"]) == 1500


def test_the_receipt_check_gives_its_verdict(
    page: Page, served: Served, demo: DemoFederation, built: BuiltLog, tmp_path: Path
) -> None:
    import base64

    from comity.sdk.receipts import export_receipt

    with ThreadPoolExecutor(1) as pool:
        receipt = pool.submit(asyncio.run, query_receipt(demo, built.path, built.denied[0])).result()
    good = export_receipt(receipt, tmp_path / "receipt.json")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Check a receipt").click()
    expect(page.get_by_role("heading", name="Check a receipt")).to_be_visible()
    page.get_by_label("Or choose the receipt file").set_input_files(str(good))
    page.get_by_role("button", name="Check the receipt").click()
    verdict = page.locator(".verdict")
    expect(verdict).to_have_class(re.compile(r"\bvalid\b"))
    expect(verdict.get_by_role("heading")).to_have_text("This receipt is valid.")
    expect(verdict).to_contain_text(f"query '{built.denied[0]}' refused under the agreement")
    expect(verdict).to_contain_text(f"checkpoint {built.size}")
    expect(verdict).to_contain_text("Witness quorum reached")
    expect(verdict).to_contain_text("the same entry")

    data = json.loads(good.read_text())
    entry = base64.b64decode(data["receipt"]["entries"][0]["entry"])
    data["receipt"]["entries"][0]["entry"] = base64.b64encode(entry.replace(b'Z"', b'Z "', 1)).decode()
    page.get_by_label("Paste the receipt").fill(json.dumps(data))
    page.get_by_role("button", name="Check the receipt").click()
    expect(page.get_by_role("alert").get_by_role("heading")).to_have_text(
        "This receipt does NOT verify: do not rely on it."
    )
    expect(page.get_by_role("alert")).to_contain_text("receipt entry 0 is not in the log")

    page.get_by_label("Paste the receipt").fill("hello, this is not a receipt")
    page.get_by_role("button", name="Check the receipt").click()
    expect(page.get_by_role("alert")).to_contain_text("This is not a Comity receipt.")
    expect(page.get_by_role("alert")).to_contain_text("it is not JSON")
    assert page.locator("text=Traceback").count() == 0


def test_a_tampered_mirror_shows_the_marked_entry(page: Page, served: Served) -> None:
    # Last: it leaves the mirror failed for the module.
    db = sqlite3.connect(served.mirror)
    db.execute(
        "UPDATE entry_data SET data = CAST(replace(CAST(data AS TEXT), 'Z\"', 'Z \"') AS BLOB)"
        " WHERE idx = 2345"
    )
    db.commit()
    db.close()
    for _ in range(60):
        page.goto(served.base + "/entries?before=2350")
        if page.locator(".status.failed").count():
            break
        time.sleep(0.5)
    expect(page.locator(".status")).to_contain_text("Verification FAILED")
    expect(page.locator(".status")).to_contain_text("entry 2345")
    row = page.locator('tr[data-index="2345"]')
    expect(row).to_have_class("bad")
    expect(row).to_contain_text("altered")
    page.locator(".status").get_by_role("link", name="entry 2345").click()
    expect(page.get_by_role("alert")).to_contain_text("does not match the log")
