"""Client-side statistics of one mode, and the ratios between modes of one N."""

from __future__ import annotations

from benchmarks.serving.client import RequestResult

RATIOS = (("t2l-warm", "static"), ("t2l-cold", "static"), ("static", "base"))


def percentiles(values: list[float], qs=(50, 95, 99), scale: float = 1e3) -> dict:
    """Percentiles (numpy's linear interpolation, as vLLM's bench) in ms; None when there is no data."""
    import numpy as np

    if not values:
        return {f"p{q}": None for q in qs} | {"mean": None}
    arr = np.asarray(values) * scale
    return {f"p{q}": round(float(np.percentile(arr, q)), 2) for q in qs} | {"mean": round(float(arr.mean()), 2)}


def summarise(mode: str, n: int, results: list[RequestResult], duration: float) -> dict:
    ok = [r for r in results if r.ok]
    errors: dict[str, int] = {}
    for r in results:
        if not r.ok:
            errors[r.error] = errors.get(r.error, 0) + 1
    out_tokens = sum(r.output_tokens for r in ok)
    return {
        "mode": mode,
        "num_descriptions": n,
        "requests": len(results),
        "succeeded": len(ok),
        "failed": len(results) - len(ok),
        "errors": errors,
        "duration_s": round(duration, 3),
        "requests_per_s": round(len(ok) / duration, 3) if duration > 0 else None,
        "output_tokens": out_tokens,
        "output_tokens_per_s": round(out_tokens / duration, 2) if duration > 0 else None,
        "prompt_tokens_mean": round(sum(r.prompt_tokens for r in ok) / len(ok), 1) if ok else None,
        "ttft_ms": percentiles([r.ttft_s for r in ok]),
        "ttft_first_per_description_ms": percentiles([r.ttft_s for r in ok if r.first_of_slot]),
        "itl_ms": percentiles([x for r in ok for x in r.itl_s], qs=(50, 99)),
        "tpot_ms": percentiles([r.tpot_s for r in ok if r.tpot_s is not None], qs=(50, 99)),
        # The old measure: gaps between chunks carrying text (tokens decoding to "" widen it).
        "text_chunk_itl_ms": percentiles([x for r in ok for x in r.text_itl_s], qs=(50, 99)),
        "tokens_per_chunk": round(out_tokens / chunks, 3) if (chunks := sum(r.token_chunks for r in ok)) else None,
        "empty_text_token_share": round(sum(r.empty_text_tokens for r in ok) / out_tokens, 3) if out_tokens else None,
        "e2e_ms": percentiles([r.e2e_s for r in ok]),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def mode_ratios(modes: dict) -> dict:
    """throughput and TTFT ratios between modes of one N (same prompts, same run)."""
    out = {}
    for a, b in RATIOS:
        if a in modes and b in modes:
            ma, mb = modes[a], modes[b]
            out[f"{a}/{b}"] = {
                "output_tokens_per_s": ratio(ma["output_tokens_per_s"], mb["output_tokens_per_s"]),
                "requests_per_s": ratio(ma["requests_per_s"], mb["requests_per_s"]),
                "ttft_p50": ratio(ma["ttft_ms"]["p50"], mb["ttft_ms"]["p50"]),
                "e2e_p50": ratio(ma["e2e_ms"]["p50"], mb["e2e_ms"]["p50"]),
            }
    if "t2l-cold" in modes and "t2l-warm" in modes:
        cold, warm = modes["t2l-cold"], modes["t2l-warm"]
        for key, name in (("ttft_ms", "cold_minus_warm_ttft_p50_ms"),
                          ("ttft_first_per_description_ms", "cold_minus_warm_first_ttft_p50_ms")):
            c, w = cold[key]["p50"], warm[key]["p50"]
            out[name] = round(c - w, 2) if c is not None and w is not None else None
    return out
