"""Screenshots of the web page's main pages in Spanish and English, for the README.

Run against a running ``respaldo serve`` (``make demo`` leaves one with an ``admin``
user): ``make screenshots``, or
``.venv/bin/python scripts/screenshots.py --url http://127.0.0.1:8080
--user admin --password-file demo-data/admin.password --out docs/screenshots``.
Debian's Chromium is driven headless through Playwright, as in the browser tests.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

PAGES = {
    "backups": "/",
    "jobs": "/jobs",
    "restore-tests": "/drills",
    "health": "/databases",
    "schedule": "/schedule",
}
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def login(page: Page, url: str, user: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.locator("#username").fill(user)
    page.locator("#password").fill(password)
    page.locator("#password").press("Enter")
    page.wait_for_url(f"{url}/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password-file", type=Path, default=Path("demo-data/admin.password"))
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    password = args.password_file.read_text().strip()
    args.out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        for language in ("es", "en"):
            context = browser.new_context(
                viewport={"width": 1280, "height": 800},
                extra_http_headers={"Accept-Language": language},
            )
            page = context.new_page()
            login(page, args.url, args.user, password)
            first = page.locator("tr[data-backup] a").first
            pages = dict(PAGES)
            if first.count():
                href = first.get_attribute("href")
                if href:
                    pages["backup"] = href
            for name, path in pages.items():
                page.goto(f"{args.url}{path}")
                target = args.out / f"{name}-{language}.png"
                page.screenshot(path=str(target), full_page=True)
                print(target)
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
