"""Screenshot of the playground against a running server (docs/playground.png in the README).

    .venv/bin/t2l-vllm serve --api-key KEY &          # the default model, once it is ready:
    .venv/bin/python scripts/playground_screenshot.py --url http://127.0.0.1:8000 --key KEY

Drives Debian's headless Chromium through Playwright (tests/playground_driver.py),
as tests/test_playground.py does, and prints what each column showed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.playground_driver import chromium_page, open_playground, run_playground  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", default=os.environ.get("VLLM_API_KEY"), help="API key (default: $VLLM_API_KEY)")
    parser.add_argument("--description", default="Is the review positive or negative? Answer with one word.")
    parser.add_argument("--input", default="The food was cold and the waiter was rude.")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "playground.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="t2l-playground-") as profile:
        with chromium_page(Path(profile), args.width, args.height) as page:
            open_playground(page, args.url.rstrip("/"), args.key)
            shown = run_playground(page, args.description, args.input, max_tokens=args.max_tokens)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
    print(json.dumps(shown, indent=2))
    print(f"screenshot: {args.out}")


if __name__ == "__main__":
    main()
