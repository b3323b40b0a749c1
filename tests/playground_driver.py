"""Drives the playground page in Debian's headless Chromium through Playwright.

Shared by tests/test_playground.py and scripts/playground_screenshot.py. Playwright
never downloads a browser here: it launches /usr/bin/chromium (scripts/install.sh
installs Debian's `chromium` when absent) with a fresh profile folder and every
background network feature off, so the only requests are the page's own.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
COLUMNS = ("adapter", "prompt", "base")
# The adapter column's metadata fields (data-field names in playground.html).
ADAPTER_FIELDS = ("adapter-id", "served-by", "confidence", "source", "files-ms", "register-ms", "create-ms")


@contextmanager
def chromium_page(user_data_dir: Path, width: int = 1440, height: int = 900) -> Iterator:
    """A page in a fresh headless Chromium profile; every URL it requests is appended to `page.requested`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
        )
        try:
            page = context.new_page()
            page.requested = []
            page.on("request", lambda request: page.requested.append(request.url))
            yield page
        finally:
            context.close()


def open_playground(page, base_url: str, api_key: str | None, timeout_ms: float = 60_000) -> None:
    """Load the page and, when it asks for one, log in with `api_key`; returns once the run form shows."""
    page.goto(f"{base_url}/t2l/playground")
    page.wait_for_selector("#login:not([hidden]), #run-form:not([hidden])", timeout=timeout_ms)
    if page.is_visible("#login"):
        if api_key is None:
            raise AssertionError("the page asks for an API key and none was given")
        page.fill("#key", api_key)
        page.click("#connect")
    page.wait_for_selector("#run-form:not([hidden])", timeout=timeout_ms)


def run_playground(page, description: str, text: str, max_tokens: int = 16, timeout_ms: float = 300_000) -> dict:
    """Fill the form, press Run, wait for the three columns to finish; what each column shows."""
    page.fill("#description", description)
    page.fill("#input", text)
    page.fill("#max-tokens", str(max_tokens))
    page.fill("#temperature", "0")
    page.click("#run")
    page.wait_for_function(
        """() => ["adapter", "prompt", "base"].every(
               (c) => ["done", "error"].includes(document.getElementById("col-" + c).dataset.state))""",
        timeout=timeout_ms,
    )
    out = {"error": page.text_content("#run-error")}
    for name in COLUMNS:
        column = f"#col-{name}"
        out[name] = {
            "state": page.get_attribute(column, "data-state"),
            "chunks": int(page.get_attribute(column, "data-chunks") or 0),
            "output": page.text_content(f"{column} [data-field=output]"),
            "stats": page.text_content(f"{column} [data-field=stats]"),
        }
    out["adapter"]["meta"] = {f: page.text_content(f"#col-adapter [data-field={f}]") for f in ADAPTER_FIELDS}
    return out
