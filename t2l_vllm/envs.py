"""Every environment variable t2l-vllm reads, in one place.

Library code calls these functions at the moment it needs a value; nothing is
read at import time, so tests can set variables per test.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root folder for converted default models and other derived files.

    `T2L_VLLM_CACHE` overrides the default `~/.cache/t2l_vllm`.
    """
    override = os.environ.get("T2L_VLLM_CACHE")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "t2l_vllm"
