"""serve_bench's verdict on the project's performance targets (generation + registration, cold TTFT, throughput ratios)."""

from __future__ import annotations


def _at(runs: list[dict], n: int) -> dict | None:
    return next((r for r in runs if r["num_descriptions"] == n), None)


def _worst(per_n: dict) -> float | None:
    values = [v for v in per_n.values() if v is not None]
    return max(values) if values else None


def evaluate_targets(runs: list[dict]) -> dict:
    """The project's performance targets, judged on this run where it has the data.

    Latency targets take the worst N; each entry says what it measured.
    """
    out: dict = {}
    cold = [r for r in runs if "t2l-cold" in r["modes"]]
    if cold:
        per_n = {str(r["num_descriptions"]): r["modes"]["t2l-cold"]["server"]["generation_plus_register_mean_ms"] for r in cold}
        value = _worst(per_n)
        out["generation_plus_registration_ms_under_20"] = {
            "measure": "server-side mean of encode+hypernet+write+register over the t2l-cold mode (worst N)",
            "per_n": per_n, "value": value, "met": value is not None and value < 20,
        }
    both = [r for r in runs if "cold_minus_warm_first_ttft_p50_ms" in r["ratios"]]
    if both:
        per_n = {str(r["num_descriptions"]): r["ratios"]["cold_minus_warm_first_ttft_p50_ms"] for r in both}
        value = _worst(per_n)
        out["cold_minus_warm_ttft_p50_ms_under_50"] = {
            "measure": "TTFT p50 of each description's first request, t2l-cold minus t2l-warm (worst N)",
            "per_n": per_n,
            "all_requests_per_n": {str(r["num_descriptions"]): r["ratios"]["cold_minus_warm_ttft_p50_ms"] for r in both},
            "value": value, "met": value is not None and value < 50,
        }
    for n, pair, floor in ((32, "t2l-warm/static", 0.95), (128, "t2l-cold/static", 0.8)):
        run = _at(runs, n)
        if run and pair in run["ratios"]:
            value = run["ratios"][pair]["output_tokens_per_s"]
            out[f"{pair}_throughput_at_N{n}_at_least_{floor}"] = {
                "measure": f"output tokens/s, {pair}, N = {n}", "value": value, "met": value is not None and value >= floor,
            }
    return out
