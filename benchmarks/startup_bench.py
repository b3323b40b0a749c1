"""Time from launch to /health of `t2l-vllm serve` on the embedded default model.

    .venv/bin/python benchmarks/startup_bench.py [--out benchmarks/results/startup.json]

Three starts, one after another:
    eager          T2L_VLLM_LORA_OPS=vllm: vLLM's CPU LoRA path, which runs eager
    compiled-cold  our LoRA path, torch.compile on, empty compile cache (a first start)
    compiled-warm  the same again, reusing the compile cache the cold start wrote
The compile caches (vLLM's and inductor's) live in a temporary folder, so the
user's are neither used nor touched.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from t2l_vllm.serving.process import ServerProcess

STARTS = (
    ("eager", {"T2L_VLLM_LORA_OPS": "vllm"}),
    ("compiled-cold", {}),
    ("compiled-warm", {}),
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="write JSON results here")
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="t2l-startup-") as tmp:
        for name, env in STARTS:
            print(f"starting {name} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            caches = {"VLLM_CACHE_ROOT": f"{tmp}/vllm-cache", "TORCHINDUCTOR_CACHE_DIR": f"{tmp}/inductor-cache"}
            server = ServerProcess([], Path(tmp) / f"{name}.log", env={**caches, **env})
            try:
                server.wait_ready(900)
                results[name] = time.perf_counter() - t0
            finally:
                server.stop()
    print("| start | seconds to /health |\n|---|---|")
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
