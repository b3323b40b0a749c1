"""The playground page (/t2l/playground) in a real headless Chromium against a real tiny server.

Two servers: one with --api-key (the page asks for the key; everything it
fetches needs it) and one without (the page connects straight away). The page's
three answers are checked against the same requests made directly with httpx.
The screenshot is kept under pytest's tmp dir (printed with -s) and copied to
$T2L_PLAYGROUND_SCREENSHOT when set; docs/playground.png comes from
scripts/playground_screenshot.py against the default model.
"""

from __future__ import annotations

import os
import re
import shutil

import httpx
import pytest

from t2l_vllm.serving.playground import CSP, PLAYGROUND_PATH, static_file
from tests.playground_driver import CHROMIUM, chromium_page, open_playground, run_playground
from tests.server_utils import running_tiny_server

pytest.importorskip("playwright", reason="Python playwright is in the dev extra (pip install -e '.[dev]')")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} not found: scripts/install.sh installs Debian's chromium (apt-get)",
                allow_module_level=True)

API_KEY = "playground-key"
DESCRIPTION = "Classify the sentiment of a tweet as positive or negative."
INPUT = "hello world, what is the answer?"
MAX_TOKENS = 12
ID_RE = re.compile(r"^t2l-[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory, tiny_base_dir, tiny_hypernet_with_confidence):
    tmp = tmp_path_factory.mktemp("playground-keyed")
    with running_tiny_server(tmp, tiny_base_dir, tiny_hypernet_with_confidence, api_key=API_KEY) as srv:
        yield srv


def direct_answer(base_url: str, key: str | None, messages: list[dict], **extra) -> httpx.Response:
    """The non-streamed, greedy answer the page's column should show."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as http:
        model = http.get("/v1/models").json()["data"][0]["id"]
        r = http.post("/v1/chat/completions", json={
            "model": model, "messages": messages, "max_tokens": MAX_TOKENS, "temperature": 0, **extra,
        })
    assert r.status_code == 200, r.text
    return r


def test_page_is_static_and_every_data_route_needs_the_key(keyed_server):
    with httpx.Client(base_url=keyed_server.url, timeout=30) as anon:
        for path, name in ((PLAYGROUND_PATH, "playground.html"), (PLAYGROUND_PATH + "/app.js", "playground.js"),
                           (PLAYGROUND_PATH + "/app.css", "playground.css")):
            r = anon.get(path)
            assert r.status_code == 200, path
            assert r.content == static_file(name), f"{path} must serve the packaged file unchanged"
            assert r.headers["content-security-policy"] == CSP
            assert r.headers["x-content-type-options"] == "nosniff"
        # Everything the page fetches needs the key.
        assert anon.get("/v1/models").status_code == 401
        assert anon.get("/v1/t2l/adapters").status_code == 401
        assert anon.post("/v1/t2l/adapters", json={"task_description": DESCRIPTION}).status_code == 401
        assert anon.post("/v1/chat/completions", json={"messages": []}).status_code == 401
        # Public means these three GETs only, not their neighbours.
        assert anon.get(PLAYGROUND_PATH + "/other").status_code == 401
        assert anon.post(PLAYGROUND_PATH).status_code == 405
    # Nothing in the page names another origin.
    for name in ("playground.html", "playground.js", "playground.css"):
        assert not re.search(rb"https?://|[\"'(]//|@import", static_file(name)), name


def test_playground_side_by_side_in_chromium(keyed_server, tmp_path):
    url = keyed_server.url
    with chromium_page(tmp_path / "profile") as page:
        page.goto(f"{url}/t2l/playground")
        page.wait_for_selector("#login:not([hidden])", timeout=60_000)
        # A wrong key is refused and the form stays.
        page.fill("#key", "wrong-key")
        page.click("#connect")
        page.wait_for_function("() => document.getElementById('login-error').textContent.length > 0")
        assert page.is_visible("#login") and not page.is_visible("#run-form")

        open_playground(page, url, API_KEY)
        shown = run_playground(page, DESCRIPTION, INPUT, max_tokens=MAX_TOKENS)
        screenshot = tmp_path / "playground.png"
        page.screenshot(path=str(screenshot), full_page=True)
        print(f"\nplayground screenshot: {screenshot}")
        if keep := os.environ.get("T2L_PLAYGROUND_SCREENSHOT"):  # CI: keep the artefact somewhere stable
            shutil.copyfile(screenshot, keep)
        requested = list(page.requested)

    assert shown["error"] == "", shown["error"]
    for name in ("adapter", "prompt", "base"):
        assert shown[name]["state"] == "done", (name, shown[name]["stats"])
        assert shown[name]["chunks"] >= 1, name
    # Streamed: the base model's answer arrived in more than one piece.
    assert shown["base"]["chunks"] > 1, shown["base"]

    # The page's answers are the server's answers to the same three requests.
    user = {"role": "user", "content": INPUT}
    through_adapter = direct_answer(url, API_KEY, [user], task_description=DESCRIPTION)
    as_prompt = direct_answer(url, API_KEY, [{"role": "system", "content": DESCRIPTION}, user])
    alone = direct_answer(url, API_KEY, [user])
    assert shown["adapter"]["output"] == through_adapter.json()["choices"][0]["message"]["content"]
    assert shown["prompt"]["output"] == as_prompt.json()["choices"][0]["message"]["content"]
    assert shown["base"]["output"] == alone.json()["choices"][0]["message"]["content"]
    # The adapter's answer differs from the base model's: it really went through the adapter.
    assert shown["adapter"]["output"] != shown["base"]["output"]

    # The metadata column shows the adapter the server made, with its confidence and timings.
    meta = shown["adapter"]["meta"]
    aid = through_adapter.headers["x-t2l-adapter-id"]
    assert ID_RE.match(aid) and meta["adapter-id"] == aid
    assert meta["served-by"] == through_adapter.headers["x-t2l-served-by"]
    assert meta["confidence"] == f"{float(through_adapter.headers['x-t2l-confidence']):.3f}"
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as http:
        record = http.get(f"/v1/t2l/adapters/{aid}").json()
    assert record["made"]["source"] == "generated"
    assert record["made"]["files_ms"] > 0 and record["made"]["register_ms"] > 0
    assert meta["source"] == "generated"
    assert meta["files-ms"] == f"{record['made']['files_ms']:.1f} ms"
    assert meta["register-ms"] == f"{record['made']['register_ms']:.1f} ms"
    assert meta["create-ms"].endswith("(browser round trip)")

    # Every request the browser made went to this server, none without purpose elsewhere.
    assert requested and all(u.startswith(url + "/") for u in requested), requested
    assert any(u.endswith("/v1/chat/completions") for u in requested)
    assert screenshot.stat().st_size > 10_000


def test_playground_without_api_key_connects_directly(tmp_path_factory, tiny_base_dir, tiny_hypernet_dir, tmp_path):
    tmp = tmp_path_factory.mktemp("playground-open")
    with running_tiny_server(tmp, tiny_base_dir, tiny_hypernet_dir) as srv:
        with chromium_page(tmp_path / "profile") as page:
            open_playground(page, srv.url, api_key=None)
            assert not page.is_visible("#login")
            shown = run_playground(page, DESCRIPTION, INPUT, max_tokens=MAX_TOKENS)
        assert shown["error"] == ""
        assert all(shown[c]["state"] == "done" for c in ("adapter", "prompt", "base")), shown
        # This hypernetwork has no confidence index: the page says so instead of showing a number.
        assert shown["adapter"]["meta"]["confidence"] == "n/a (no index)"
        assert ID_RE.match(shown["adapter"]["meta"]["adapter-id"])
