"""Start-up time and decode throughput of `t2l-vllm serve` on the embedded default model.

    .venv/bin/python benchmarks/startup_bench.py [--out-dir benchmarks/results/startup] [--starts NAME,...]

One start after another, each timed from launch to /health, then a short
decode-throughput probe on the running server (8 concurrent completions x 64
tokens, EOS ignored, greedy, best of 3 rounds): base model, and through one
generated adapter.

    vllm-ops       T2L_VLLM_LORA_OPS=vllm: vLLM's CPU LoRA path, which vLLM runs eager
    eager          our LoRA ops, `--enforce-eager` (no torch.compile)
    aot-cold/-warm our ops compiled with vLLM's own defaults for torch >= 2.12
                   (VLLM_USE_AOT_COMPILE=1, VLLM_USE_MEGA_AOT_ARTIFACT=1); -warm
                   reuses the cache -cold wrote. vLLM 0.32 on CPU fails to reload it.
    cold/warm      our ops compiled as `t2l-vllm serve` launches them now
                   (launch.py's compile-cache settings); warm reuses cold's cache

Each cold/warm pair has its own compile caches (vLLM's and inductor's) in a
temporary folder, so the user's are neither used nor touched. The log of each
start is searched for vLLM's cache messages, so the table says whether the
cache was loaded. Outputs: startup.json and startup.md in --out-dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from t2l_vllm.serving.process import ServerProcess

# name -> (environment, serve arguments, cache group)
STARTS = {
    "vllm-ops": ({"T2L_VLLM_LORA_OPS": "vllm"}, [], "vllm-ops"),
    "eager": ({}, ["--enforce-eager"], "eager"),
    "aot-cold": ({"VLLM_USE_AOT_COMPILE": "1", "VLLM_USE_MEGA_AOT_ARTIFACT": "1"}, [], "aot"),
    "aot-warm": ({"VLLM_USE_AOT_COMPILE": "1", "VLLM_USE_MEGA_AOT_ARTIFACT": "1"}, [], "aot"),
    "cold": ({}, [], "ours"),
    "warm": ({}, [], "ours"),
}
# Log lines vLLM writes when it loads a cached compile, and when it fails to and compiles again.
CACHE_LOADED = ("Directly load AOT compilation", "Directly load the compiled graph")
CACHE_FAILED = "Compiling model again due to a load failure"
DESCRIPTION = "Answer the question in one short sentence."


async def _throughput(url: str, description: str | None, streams: int, tokens: int, rounds: int) -> float:
    """Output tokens/s of `streams` concurrent greedy completions of `tokens` tokens each (best of `rounds`)."""
    import openai

    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused")
    model = (await client.models.list()).data[0].id
    extra = {"ignore_eos": True} | ({"task_description": description} if description else {})

    async def one(max_tokens: int) -> int:
        r = await client.completions.create(model=model, prompt="Tell me about the sea.", max_tokens=max_tokens,
                                            temperature=0, extra_body=extra)
        return r.usage.completion_tokens

    await one(4)  # warm-up: generates and registers the adapter, first-batch costs
    rates = []
    for _ in range(rounds):  # the best round: the machine is shared, and load only ever slows a round down
        t0 = time.perf_counter()
        counts = await asyncio.gather(*[one(tokens) for _ in range(streams)])
        rates.append(sum(counts) / (time.perf_counter() - t0))
    await client.close()
    return max(rates)


def cache_state(log: str) -> str:
    """What vLLM's AOT cache did; "-" where vLLM logs nothing (without AOT, inductor's own cache is silent)."""
    if CACHE_FAILED in log:
        return "reload failed, compiled again"
    if any(m in log for m in CACHE_LOADED):
        return "loaded"
    return "-"


def engine_init_seconds(log: str) -> float | None:
    """vLLM's "init engine (profile, create kv cache, warmup model) took X s": where the compile happens."""
    found = re.findall(r"init engine \(profile, create kv cache, warmup model\) took ([0-9.]+) s", log)
    return float(found[-1]) if found else None


def markdown(results: dict) -> str:
    ref = results.get("eager", {}).get("seconds")
    base_ref = results.get("eager", {}).get("base_tok_s")
    lines = ["| start | seconds to /health | vs eager | engine init s | vLLM AOT cache | load avg (1 min) | base tok/s "
             "| with description tok/s | base tok/s vs eager |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        ratio = f"{r['seconds'] / ref:.2f}" if ref else "-"
        tput = f"{r['base_tok_s'] / base_ref:.2f}" if base_ref else "-"
        init = "-" if r["engine_init_s"] is None else f"{r['engine_init_s']:.1f}"
        lines.append(f"| {name} | {r['seconds']:.1f} | {ratio} | {init} | {r['cache']} | {r['load_avg']:.1f} "
                     f"| {r['base_tok_s']:.1f} | {r['lora_tok_s']:.1f} | {tput} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", default="runs/startup", help="where startup.json and startup.md go")
    p.add_argument("--starts", default=",".join(STARTS), help=f"comma-separated subset of {','.join(STARTS)}")
    p.add_argument("--streams", type=int, default=8, help="concurrent completions in the throughput probe")
    p.add_argument("--tokens", type=int, default=64, help="tokens per completion in the throughput probe")
    p.add_argument("--rounds", type=int, default=3, help="throughput probe rounds; the best is reported")
    args = p.parse_args()
    names = [n for n in args.starts.split(",") if n]
    unknown = [n for n in names if n not in STARTS]
    if unknown:
        p.error(f"unknown start(s) {unknown}; choose from {', '.join(STARTS)}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="t2l-startup-") as tmp:
        for name in names:
            env, serve_args, group = STARTS[name]
            print(f"starting {name} ...", file=sys.stderr, flush=True)
            caches = {"VLLM_CACHE_ROOT": f"{tmp}/{group}/vllm-cache",
                      "TORCHINDUCTOR_CACHE_DIR": f"{tmp}/{group}/inductor-cache"}
            log_path = Path(tmp) / f"{name}.log"
            load_avg = os.getloadavg()[0]
            t0 = time.perf_counter()
            server = ServerProcess(serve_args + ["--low-confidence-policy", "adapter"], log_path,
                                   env={**caches, **env})
            try:
                server.wait_ready(900)
                seconds = time.perf_counter() - t0
                base = asyncio.run(_throughput(server.url, None, args.streams, args.tokens, args.rounds))
                lora = asyncio.run(_throughput(server.url, DESCRIPTION, args.streams, args.tokens, args.rounds))
            finally:
                server.stop()
            log = log_path.read_text(errors="replace")
            results[name] = {"seconds": seconds, "cache": cache_state(log), "engine_init_s": engine_init_seconds(log),
                             "load_avg": load_avg,
                             "base_tok_s": base, "lora_tok_s": lora, "env": env, "serve_args": serve_args}
            print(json.dumps({name: results[name]}), file=sys.stderr, flush=True)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "startup.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "startup.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
