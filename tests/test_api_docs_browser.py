"""`GET /docs` in a real headless Chromium: the inline script renders every operation of /openapi.json."""
from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_docs_page_renders_the_document(live_server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    document = httpx.get(f"{live_server.base_url}/openapi.json", timeout=30).json()
    operation_count = sum(len(item) for item in document["paths"].values())

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(f"{live_server.base_url}/docs")
            page.wait_for_function("n => document.querySelectorAll('details').length === n", arg=operation_count,
                                   timeout=20_000)
            summaries = page.locator("summary").all_inner_texts()
            assert any("POST" in s and "/calls/create" in s for s in summaries)
            assert page.locator("h2").all_inner_texts()[0] == document["tags"][0]["name"]

            create = page.locator("details", has_text="/calls/create").first
            create.locator("summary").click()
            body = create.inner_text()
            assert "Request body" in body and "agent_id" in body and "INSUFFICIENT_SCOPE" in body
            assert not errors
            assert all(url.startswith(live_server.base_url) for url in requests)  # nothing from elsewhere
        finally:
            browser.close()
