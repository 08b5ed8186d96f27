"""The legal officers' console: sync time, and page times against two baselines in the same run.

python -m bench console [--queries N] [--samples S]

1. Builds a log of about ``3.1 * N`` entries (``bench.console_log``) under a demo federation.
2. Syncs a new mirror from it (the verifier's full round: checkpoint, entries, root) and times it.
3. Starts ``comity audit console`` and ``comity audit serve`` (the older viewer) as processes, signs
   in, and times each page over ``S`` requests (median, p90), beside the console's own static CSS
   file (the web stack's floor on this machine) and the older viewer's pages.
4. Loads two pages in headless Chromium and reports the browser's load time (navigation timing).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.console_log import build_console_log, query_receipt
from comity.sdk.console.mirror import Mirror
from comity.sdk.console.sources import DatabaseSource
from comity.sdk.console.trust import ConsoleTrust
from comity.sdk.console.verifier import MirrorVerifier
from comity.sdk.demo.setup import build_demo_federation, free_ports
from comity.sdk.receipts import export_receipt

_COMITY = Path(sys.executable).with_name("comity")


@contextmanager
def _process(args: list[str], ready: str) -> Iterator[None]:
    process = subprocess.Popen([str(_COMITY), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(ready, timeout=5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{args[:2]} did not start") from None
                time.sleep(0.2)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def _times(get: Callable[[], httpx.Response], samples: int) -> tuple[float, float]:
    get()  # warm
    spent = []
    for _ in range(samples):
        start = time.perf_counter()
        response = get()
        spent.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{response.request.url} answered {response.status_code}")
    spent.sort()
    return statistics.median(spent), spent[int(len(spent) * 0.9) - 1]


def _getter(client: httpx.Client, path: str) -> Callable[[], httpx.Response]:
    return lambda: client.get(path)


def _checker(client: httpx.Client, receipt: str) -> Callable[[], httpx.Response]:
    form = client.get("/receipt").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None

    def check() -> httpx.Response:
        response = client.post("/receipt", data={"csrf": csrf.group(1), "receipt": receipt})
        if "This receipt is valid." not in response.text:
            raise RuntimeError("the benchmark's receipt did not verify")
        return response

    return check


def _sign_in(client: httpx.Client, token: str) -> None:
    page = client.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    done = client.post("/signin", data={"csrf": csrf.group(1), "token": token})
    if done.status_code >= 400:
        raise RuntimeError(f"sign-in failed: {done.status_code}")


def _browser_loads(base: str, token: str, paths: list[str]) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    found = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        tab = browser.new_page()
        tab.goto(base + "/signin")
        tab.fill("#token", token)
        tab.get_by_role("button", name="Sign in").click()
        tab.wait_for_url(base + "/")
        for path in paths:
            loads = []
            for _ in range(5):
                tab.goto(base + path)
                loads.append(
                    float(tab.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
                )
            found[path] = statistics.median(loads)
        browser.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--queries", type=int, default=32_000, help="queries in the log (~3.1 entries each)")
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="console-bench-"))
    demo = build_demo_federation(work / "federation", people=5)
    start = time.perf_counter()
    built = asyncio.run(build_console_log(demo, work / "audit.db", queries=args.queries))
    print(f"log: {built.size} entries, written in {time.perf_counter() - start:.1f} s")

    trust = ConsoleTrust.load(demo.layout.federation_file)
    mirror = Mirror(work / "mirror.db", country_of=trust.country_of)
    source = DatabaseSource(f"sqlite:///{built.path}", quorum=trust.quorum, log_key=trust.log_key)
    start = time.perf_counter()
    MirrorVerifier(mirror, source, log_key=trust.log_key, quorum=trust.quorum).sync()
    synced = time.perf_counter() - start
    print(f"sync from the database copy: {synced:.1f} s ({built.size / synced:,.0f} entries/s)")
    check_start = time.perf_counter()
    MirrorVerifier(mirror, source, log_key=trust.log_key, quorum=trust.quorum).check_mirror()
    print(f"full mirror check: {time.perf_counter() - check_start:.1f} s")
    source.close()

    console_port, viewer_port = free_ports(2)
    first, second = sorted(demo.layout.agencies)[:2]
    token = demo.officer_tokens[first].read_text().strip()
    fed = str(demo.layout.federation_file)
    query_id = built.query_ids[len(built.query_ids) // 2]
    day = (datetime.now(UTC) - timedelta(days=15)).date().isoformat()
    console_args = ["audit", "console", "-f", fed, "--db", str(built.path), "--mirror", str(mirror.path),
                    "--port", str(console_port), "--interval", "3600"]  # fmt: skip
    viewer_args = ["audit", "serve", "-f", fed, "--db", str(built.path), "--port", str(viewer_port)]
    base, old = f"http://127.0.0.1:{console_port}", f"http://127.0.0.1:{viewer_port}"
    pages = {
        "static CSS (floor)": "/static/console.css",
        "overview": "/",
        "entries, newest": "/entries",
        # Page 100 when the log has that many pages of 50; else its oldest page (before= must be >= 1).
        "entries, page 100": f"/entries?before={max(built.size - 100 * 50, 50)}",
        "entries, decision+refused+agency": f"/entries?kind=decision&decision=DENY&agency={second.upper()}",
        "entries, by rule": "/entries?rule=serious_crime",
        "entries, one query id": f"/entries?query_id={query_id}",
        "entries, one day": f"/entries?since={day}&until={day}",
        "entries, no match": "/entries?agency=nobody",
        "one entry": f"/entries/{built.size // 2}",
        "one query": f"/queries/{query_id}",
        "one order (emergency)": f"/orders/{built.emergency_order}",
        "report (tables, four charts)": "/report",
        "report, CSV export": "/report.csv",
        "receipt check form": "/receipt",
    }
    receipt = export_receipt(
        asyncio.run(query_receipt(demo, built.path, built.denied[len(built.denied) // 2])),
        work / "receipt.json",
    ).read_text()
    rows: list[tuple[str, float, float]] = []
    with _process(console_args, base + "/signin"), httpx.Client(base_url=base, timeout=60) as client:
        _sign_in(client, token)
        for name, path in pages.items():
            rows.append((f"console: {name}", *_times(_getter(client, path), args.samples)))
        rows.append(
            ("console: receipt check (POST, valid)", *_times(_checker(client, receipt), args.samples))
        )
        loads = _browser_loads(base, token, ["/", "/entries"])
    with _process(viewer_args, old + "/"), httpx.Client(base_url=old, timeout=600) as plain:
        for name, path in {"first page": "/", "no match": "/?agency=nobody"}.items():
            median, p90 = _times(_getter(plain, path), max(3, args.samples // 10))
            rows.append((f"older viewer: {name}", median, p90))
    floor = rows[0][1]
    print(f"\npages over {built.size} entries (ms; x = median / static CSS median)")
    for name, median, p90 in rows:
        print(f"  {name:45s} median {median:8.1f}  p90 {p90:8.1f}  x{median / floor:6.1f}")
    print("\nbrowser load (navigation timing, median of 5, ms)")
    for path, value in loads.items():
        print(f"  {path:45s} {value:8.1f}")


if __name__ == "__main__":
    main()
