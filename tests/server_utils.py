"""The server process used by the tests (the library's launcher, run from the repo root)."""

from __future__ import annotations

from pathlib import Path

from t2l_vllm.serving.process import ServerProcess as _ServerProcess

ROOT = Path(__file__).resolve().parent.parent


class ServerProcess(_ServerProcess):
    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, api_key: str | None = None):
        super().__init__(args, log_path, env=env, api_key=api_key, cwd=ROOT)
