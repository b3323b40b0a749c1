"""serve_bench's markdown tables and plot."""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import pyplot
from benchmarks.serving.prometheus import EXTRA_STAGES, STAGES


def targets_table(report: dict) -> list[str]:
    if not report["targets"]:
        return []
    lines = ["", "Targets (this run):", "", "| target | measured | met |", "|---|---|---|"]
    for name, t in report["targets"].items():
        lines.append(f"| {name} ({t['measure']}) | {_fmt(t['value'])} | {'yes' if t['met'] else 'no'} |")
    return lines


def _fmt(v) -> str:
    return "–" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))


def markdown(report: dict) -> str:
    w = report["workload"]
    loop = f"Poisson {w['request_rate']} req/s" if w["request_rate"] else f"closed loop, concurrency {w['concurrency']}"
    lines = [
        f"Workload: {w['requests_per_description']} requests per description, prompt ~{w['prompt_len']} words, "
        f"{w['output_len']} output tokens, {loop}, endpoint {w['endpoint']}, seed {w['seed']}.",
        "",
        "| N | mode | ok/sent | req/s | out tok/s | TTFT p50 | TTFT p95 | TTFT p99 | ITL p50 | ITL p99 | TPOT p50 "
        "| text-chunk ITL p50 | tokens/chunk | empty-text tokens | E2E p50 "
        "| gen+reg mean | registrations (mean ms) | cache hit rate |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report["runs"]:
        for mode, s in run["modes"].items():
            srv = s["server"]
            reg = srv["generation_ms"]["register"]
            lines.append(
                f"| {run['num_descriptions']} | {mode} | {s['succeeded']}/{s['requests']} | {_fmt(s['requests_per_s'])} "
                f"| {_fmt(s['output_tokens_per_s'])} | {_fmt(s['ttft_ms']['p50'])} | {_fmt(s['ttft_ms']['p95'])} "
                f"| {_fmt(s['ttft_ms']['p99'])} | {_fmt(s['itl_ms']['p50'])} | {_fmt(s['itl_ms']['p99'])} "
                f"| {_fmt(s['tpot_ms']['p50'])} | {_fmt(s['text_chunk_itl_ms']['p50'])} | {_fmt(s['tokens_per_chunk'])} "
                f"| {_fmt(s['empty_text_token_share'])} | {_fmt(s['e2e_ms']['p50'])} | {_fmt(srv['generation_plus_register_mean_ms'])} "
                f"| {reg['count']} ({_fmt(reg['mean_ms'])}) | {_fmt(srv['cache']['hit_rate'])} |"
            )
    lines += ["", "Latencies in ms, timed per token: ITL is the gap at which each token after the first reached the "
              "client (a chunk of k tokens counts its gap once, then k - 1 zeros), TPOT = (E2E - TTFT) / (tokens - 1); "
              "text-chunk ITL is the gap between chunks carrying text; empty-text tokens = share of tokens that "
              "decoded to \"\"."]
    lines += ["", "Ratios (same prompts, same run):", "",
              "| N | t2l-warm/static tok/s | t2l-cold/static tok/s | static/base tok/s | t2l-warm/static TTFT p50 "
              "| t2l-cold/static TTFT p50 | cold − warm TTFT p50 (ms) | cold − warm first-request TTFT p50 (ms) |",
              "|---|---|---|---|---|---|---|---|"]
    for run in report["runs"]:
        r = run["ratios"]
        get = lambda pair, k: _fmt(r.get(pair, {}).get(k))  # noqa: E731
        lines.append(
            f"| {run['num_descriptions']} | {get('t2l-warm/static', 'output_tokens_per_s')} | {get('t2l-cold/static', 'output_tokens_per_s')} "
            f"| {get('static/base', 'output_tokens_per_s')} | {get('t2l-warm/static', 'ttft_p50')} | {get('t2l-cold/static', 'ttft_p50')} "
            f"| {_fmt(r.get('cold_minus_warm_ttft_p50_ms'))} | {_fmt(r.get('cold_minus_warm_first_ttft_p50_ms'))} |"
        )
    lines += stage_table(report) + vllm_bench_table(report) + targets_table(report)
    return "\n".join(lines) + "\n"


def stage_table(report: dict) -> list[str]:
    """Server-side generation time per stage in the cold mode (from the Prometheus histogram)."""
    rows = [r for r in report["runs"] if "t2l-cold" in r["modes"]]
    if not rows:
        return []
    lines = ["", "Adapter generation on the server, t2l-cold mode (Prometheus histogram delta; p50 interpolated in buckets):", "",
             "| N | adapters made | " + " | ".join(f"{s} mean / p50 (ms)" for s in (*STAGES, *EXTRA_STAGES))
             + " | singleflight joins |",
             "|---|---|" + "---|" * (len(STAGES) + len(EXTRA_STAGES)) + "---|"]
    for run in rows:
        srv = run["modes"]["t2l-cold"]["server"]
        g = srv["generation_ms"]
        cells = " | ".join(f"{_fmt(g[s]['mean_ms'])} / {_fmt(g[s]['p50_ms'])}" if s in g else "–"
                           for s in (*STAGES, *EXTRA_STAGES))
        lines.append(f"| {run['num_descriptions']} | {g['hypernet']['count']} | {cells} | {srv['singleflight_joins']} |")
    return lines


def vllm_bench_table(report: dict) -> list[str]:
    rows = [r for r in report["runs"] if "vllm_bench" in r and "base" in r["modes"]]
    if not rows:
        return []
    lines = ["", "Cross-check of the base mode with vLLM's own load tester (vllm.benchmarks.serve, random dataset):", "",
             "| N (requests) | ours req/s | vLLM req/s | ours out tok/s | vLLM out tok/s | ours TTFT p50 | vLLM TTFT p50 |",
             "|---|---|---|---|---|---|---|"]
    for run in rows:
        ours, theirs = run["modes"]["base"], run["vllm_bench"]
        lines.append(
            f"| {run['num_descriptions']} ({run['requests_per_mode']}) | {_fmt(ours['requests_per_s'])} | {_fmt(theirs.get('request_throughput'))} "
            f"| {_fmt(ours['output_tokens_per_s'])} | {_fmt(theirs.get('output_throughput'))} "
            f"| {_fmt(ours['ttft_ms']['p50'])} | {_fmt(theirs.get('median_ttft_ms'))} |"
        )
    return lines


def plot(report: dict, path: Path) -> bool:
    """Output tokens/s and TTFT p50 per mode against N; False (and a note) without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ns = [r["num_descriptions"] for r in report["runs"]]
    for mode in report["modes"]:
        thr = [r["modes"][mode]["output_tokens_per_s"] for r in report["runs"]]
        ttft = [r["modes"][mode]["ttft_ms"]["p50"] for r in report["runs"]]
        ax1.plot(ns, thr, marker="o", label=mode)
        ax2.plot(ns, ttft, marker="o", label=mode)
    for ax, title in ((ax1, "output tokens/s"), (ax2, "TTFT p50 (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("distinct task descriptions N")
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    ax1.legend()
    w = report["workload"]
    fig.suptitle(f"serve_bench: {w['requests_per_description']} req/description, concurrency {w['concurrency']}, "
                 f"{w['output_len']} output tokens")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
