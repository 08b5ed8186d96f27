"""Take the console's screenshots for docs/audit.md (docs/images/console-*.png).

Usage: python scripts/console_screenshots.py   (needs /usr/bin/chromium and the console extra)

Builds a demo federation and a log of about 9,000 entries (``bench.console_log``), runs
``comity audit console`` over it, signs in as a legal officer in headless Chromium and saves
each main page at a laptop's width.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.console_log import build_console_log, query_receipt
from comity.sdk.demo.setup import build_demo_federation, free_ports
from comity.sdk.receipts import export_receipt

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
_COMITY = Path(sys.executable).with_name("comity")


def main() -> None:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="console-shots-"))
    demo = build_demo_federation(work / "federation", people=5, seed=11)
    built = asyncio.run(build_console_log(demo, work / "audit.db", queries=3000, seed=2))
    receipt = export_receipt(asyncio.run(query_receipt(demo, built.path, built.denied[3])), work / "r.json")
    tampered = json.loads(receipt.read_text())
    entry = base64.b64decode(tampered["receipt"]["entries"][0]["entry"])
    tampered["receipt"]["entries"][0]["entry"] = base64.b64encode(entry.replace(b'Z"', b'Z "', 1)).decode()
    agency = sorted(demo.layout.agencies)[0]
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(  # noqa: S603 (our own comity, fixed arguments)
        [str(_COMITY), "audit", "console", "-f", str(demo.layout.federation_file), "--db", str(built.path),
         "--mirror", str(work / "mirror.db"), "--port", str(port), "--interval", "1"],
    )  # fmt: skip
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(base + "/signin", timeout=2):  # noqa: S310 (http, loopback)
                    break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
            )
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            tab.goto(base + "/signin")
            tab.get_by_label("Your token").fill(demo.officer_tokens[agency].read_text().strip())
            tab.get_by_role("button", name="Sign in").click()
            while not tab.locator(".status.ok").count():
                time.sleep(0.5)
                tab.reload()

            def shot(name: str) -> None:
                tab.screenshot(path=str(IMAGES / f"console-{name}.png"), full_page=True)

            shot("overview")
            tab.goto(f"{base}/entries?kind=decision&decision=DENY&agency={agency}")
            shot("entries")
            first = tab.locator("tbody tr[data-index]").first.get_attribute("data-index")
            tab.goto(f"{base}/entries/{first}")
            shot("entry")
            tab.goto(f"{base}/queries/{built.query_ids[1]}")
            shot("query")
            tab.goto(base + "/report")
            shot("report")
            tab.goto(base + "/receipt")
            tab.get_by_label("Or choose the receipt file").set_input_files(str(receipt))
            tab.get_by_role("button", name="Check the receipt").click()
            shot("receipt-valid")
            tab.get_by_label("Paste the receipt").fill(json.dumps(tampered))
            tab.get_by_role("button", name="Check the receipt").click()
            shot("receipt-invalid")
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
