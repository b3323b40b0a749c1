"""Semantic reuse on the task suites: reuse rate between paraphrases, false reuse between tasks, per threshold.

    .venv/bin/python benchmarks/semantic_reuse.py [--out benchmarks/results/semantic_reuse]

Every description of the v1 suite (87 families) and of the compositional suite
(560 families) is embedded once with the shipped checkpoint's encoder (the
vectors the server's reuse index holds). Within each suite, every pair of
descriptions is one of:

- paraphrase: same family (the same task in other words): reuse is right;
- mirror: the two families of a mirror pair (v1: each of the 11 held-out
  families and the training sibling it mirrors; compositional: each family
  and its `mirror`): reuse is the worst mistake;
- different: any other pair of families: reuse is wrong.

For each threshold: the share of pairs of each kind that the index would
merge, by cosine alone and with the lexical check (reuse.lexical_conflict),
plus canonical-text merges (layer 1). Then a serving simulation: the
descriptions arrive in a seeded random order, each is served by the index's
match if there is one, else becomes a new adapter; counted: new adapters,
right reuses (same family), false reuses (another family; mirror separately).
Last, the lookup time of the brute-force index at 1k/10k/100k entries against
the encoder pass every new description costs anyway (same run).
Writes semantic_reuse.json, semantic_reuse.md and semantic_reuse.png.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

if __package__ is None:  # run as `python benchmarks/semantic_reuse.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from t2l_vllm.reuse import DEFAULT_REUSE_THRESHOLD, ReuseIndex, canonical_text, lexical_conflict

# v1: each short held-out family and the training family it mirrors (splits.py comments).
V1_MIRROR_PAIRS = (
    ("smaller_number", "larger_number"), ("min_of_list", "max_of_list"), ("vowel_or_consonant", "even_or_odd"),
    ("count_consonants", "count_vowels"), ("last_letter", "first_letter"), ("english_to_spanish", "english_to_french"),
    ("animal_sound", "animal_class"), ("day_before", "day_after"), ("email_username", "email_domain"),
    ("date_iso_to_us", "date_iso_to_dmy"), ("camel_to_snake", "snake_to_camel"),
)
THRESHOLDS = [round(0.80 + 0.01 * i, 2) for i in range(21)]
MIN_T = THRESHOLDS[0]
KINDS = ("paraphrase", "mirror", "different")


def suites(per_family: int = 4, mirror_only: bool = True) -> dict[str, tuple[list[str], list[str], set[frozenset[str]]]]:
    """suite -> (descriptions, family of each, mirror family pairs).

    v1: every description. compositional: `per_family` of each family's 24, drawn
    with a seed per family, of the families in a mirror pair (`mirror_only`, 264
    of 560) or of all: embedding all 13,440 descriptions did not finish in an
    hour on this shared 2-core machine while training jobs ran.
    """
    from t2l_vllm.tasks.compositional.suite import COMBINATIONS
    from t2l_vllm.tasks.splits import FAMILIES

    out = {}
    texts, fams = [], []
    for name, fam in FAMILIES.items():
        texts += fam.descriptions
        fams += [name] * len(fam.descriptions)
    out["v1"] = (texts, fams, {frozenset(p) for p in V1_MIRROR_PAIRS})
    texts, fams, mirrors = [], [], set()
    for name, combo in COMBINATIONS.items():
        if mirror_only and not combo.mirror:
            continue
        chosen = random.Random(f"semantic-reuse:{name}").sample(combo.family.descriptions, per_family)
        texts += chosen
        fams += [name] * len(chosen)
        if combo.mirror:
            mirrors.add(frozenset((name, combo.mirror)))
    out["compositional"] = (texts, fams, mirrors)
    return out


def embed(texts: list[str], cache: Path) -> torch.Tensor:
    """[N, d] L2-normalised embeddings with the shipped checkpoint's encoder (cached by text list)."""
    import hashlib

    from t2l_vllm.checkpoint import read_hypernet_config
    from t2l_vllm.defaults import SHIPPED_HYPERNET
    from t2l_vllm.encoders import load_encoder

    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = cache / f"emb-{key}.pt"
    if path.is_file():
        return torch.load(path)
    config, _ = read_hypernet_config(SHIPPED_HYPERNET)
    encoder = load_encoder(config.encoder)
    parts = []
    for i in range(0, len(texts), 32):
        parts.append(encode_batch(encoder, texts[i:i + 32]))
        if i % 640 == 0:
            print(f"embedded {i + len(parts[-1])}/{len(texts)}", flush=True)
    emb = torch.cat(parts)
    emb = emb / emb.norm(dim=-1, keepdim=True)
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(emb, path)
    return emb


@torch.inference_mode()
def encode_batch(encoder, texts: list[str]) -> torch.Tensor:
    """[B, d] mean-pooled vectors of a padded batch: the server encodes one text at a time (bit-exact
    adapters); padding moves the result only in the last float bits, and is ~5x faster here."""
    batch = encoder.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=encoder.max_length)
    hidden = encoder.model(**batch).last_hidden_state  # [B, T, d]
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def pair_rates(texts: list[str], fams: list[str], mirrors: set[frozenset[str]], emb: torch.Tensor) -> dict:
    """Per pair kind: total pairs, and per threshold the share merged by cosine alone and with the lexical check."""
    n = len(texts)
    fam_ids = {f: i for i, f in enumerate(dict.fromkeys(fams))}
    fid = torch.tensor([fam_ids[f] for f in fams])
    mirror_of = torch.full((len(fam_ids),), -1)
    for pair in mirrors:
        a, b = sorted(pair)
        mirror_of[fam_ids[a]], mirror_of[fam_ids[b]] = fam_ids[b], fam_ids[a]
    totals = dict.fromkeys(KINDS, 0)
    bins = torch.tensor(THRESHOLDS)
    raw = {k: torch.zeros(len(THRESHOLDS), dtype=torch.long) for k in KINDS}
    guarded = {k: torch.zeros(len(THRESHOLDS), dtype=torch.long) for k in KINDS}
    canonical = dict.fromkeys(KINDS, 0)
    blocked_by: dict[str, int] = {}
    examples = {k: [] for k in KINDS}  # highest-cosine pairs kept by the lexical check
    for start in range(0, n, 512):
        rows = torch.arange(start, min(n, start + 512))
        sims = emb[rows] @ emb.T  # [b, n]
        upper = torch.arange(n)[None, :] > rows[:, None]  # each pair once
        same = fid[rows][:, None] == fid[None, :]
        mirror = mirror_of[fid[rows]][:, None] == fid[None, :]
        for kind, mask in (("paraphrase", same), ("mirror", mirror), ("different", ~same & ~mirror)):
            m = mask & upper
            totals[kind] += int(m.sum())
            vals = sims[m]
            raw[kind] += (vals[:, None] >= bins[None, :]).sum(0)
            for i, j in (m & (sims >= MIN_T)).nonzero().tolist():
                a, b = texts[start + i], texts[j]
                s = float(sims[i, j])
                reason = lexical_conflict(a, b)
                if reason is None:
                    guarded[kind] += (s >= bins).long()
                    if kind != "paraphrase":
                        examples[kind].append((round(s, 4), a, b))
                elif kind != "paraphrase":
                    tag = reason.split(" ")[0] if reason.startswith(("opposites", "number")) else "one-sided word"
                    blocked_by[tag] = blocked_by.get(tag, 0) + 1
    # Layer 1 (canonical text), independent of the embedding.
    keys = [canonical_text(t) for t in texts]
    by_key: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)
    for idx in by_key.values():
        for x in range(len(idx)):
            for y in range(x + 1, len(idx)):
                fa, fb = fams[idx[x]], fams[idx[y]]
                kind = "paraphrase" if fa == fb else ("mirror" if frozenset((fa, fb)) in mirrors else "different")
                canonical[kind] += 1
    return {
        "descriptions": n, "families": len(fam_ids), "mirror_pairs": len(mirrors), "pairs": totals,
        "canonical_merges": canonical,
        "rows": [
            {"threshold": t, **{f"{k}_cosine": int(raw[k][i]) / max(1, totals[k]) for k in KINDS},
             **{f"{k}_guarded": int(guarded[k][i]) / max(1, totals[k]) for k in KINDS},
             **{f"{k}_guarded_pairs": int(guarded[k][i]) for k in KINDS},
             **{f"{k}_cosine_pairs": int(raw[k][i]) for k in KINDS}}
            for i, t in enumerate(THRESHOLDS)
        ],
        "blocked_by_lexical_check_above_min_threshold": blocked_by,
        "closest_kept_nonparaphrase_pairs": {
            k: [list(e) for e in sorted(examples[k], reverse=True)[:5]] for k in ("mirror", "different")
        },
    }


def simulate(texts: list[str], fams: list[str], mirrors: set[frozenset[str]], emb: torch.Tensor,
             threshold: float, seed: int = 0) -> dict:
    """Serve every description once, in a seeded random order, through a ReuseIndex."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    index = ReuseIndex(emb.shape[1], threshold=threshold)
    fam_of: dict[str, str] = {}
    counts = {"new": 0, "exact": 0, "right_semantic": 0, "false_different": 0, "false_mirror": 0}
    families_with_reuse = set()
    for i in order:
        hit = index.match(texts[i], emb[i])
        if hit is None:
            aid = f"a{i}"
            index.add(aid, texts[i], emb[i])
            fam_of[aid] = fams[i]
            counts["new"] += 1
            continue
        other = fam_of[hit.adapter_id]
        if other == fams[i]:
            counts["exact" if hit.kind == "exact" else "right_semantic"] += 1
            families_with_reuse.add(fams[i])
        elif frozenset((other, fams[i])) in mirrors:
            counts["false_mirror"] += 1
        else:
            counts["false_different"] += 1
    n = len(texts)
    return {"threshold": threshold, "requests": n, **counts,
            "adapters_per_description": counts["new"] / n,
            "families_with_a_reuse": len(families_with_reuse)}


def lookup_times(dim: int, sizes=(1_000, 10_000, 100_000), queries: int = 200) -> list[dict]:
    """Median and p99 time of ReuseIndex.nearest over random unit vectors (brute force)."""
    out = []
    g = torch.Generator().manual_seed(0)
    for size in sizes:
        index = ReuseIndex(dim)
        vecs = torch.randn(size, dim, generator=g)
        for i in range(size):
            index.add(f"a{i}", f"d{i}", vecs[i])
        qs = torch.randn(queries, dim, generator=g)
        times = []
        for q in qs:
            t0 = time.perf_counter()
            index.nearest(q)
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        out.append({"entries": size, "p50_ms": statistics.median(times), "p99_ms": times[int(0.99 * len(times)) - 1],
                    "matrix_mib": size * dim * 4 / 2**20})
    return out


def encoder_time(texts: list[str]) -> float:
    """Median ms of one encoder pass (the cost of any new description, reused or not)."""
    from t2l_vllm.checkpoint import read_hypernet_config
    from t2l_vllm.defaults import SHIPPED_HYPERNET
    from t2l_vllm.encoders import load_encoder

    config, _ = read_hypernet_config(SHIPPED_HYPERNET)
    encoder = load_encoder(config.encoder)
    times = []
    for t in texts:
        t0 = time.perf_counter()
        encoder.encode([t])
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (suite, r) in zip(axes, results["suites"].items()):
        xs = [row["threshold"] for row in r["rows"]]
        for kind, style in (("paraphrase", "tab:green"), ("different", "tab:orange"), ("mirror", "tab:red")):
            ax.plot(xs, [100 * row[f"{kind}_cosine"] for row in r["rows"]], "--", color=style, label=f"{kind}, cosine only")
            ax.plot(xs, [100 * row[f"{kind}_guarded"] for row in r["rows"]], "-", color=style, label=f"{kind}, cosine + lexical check")
        ax.axvline(results["default_threshold"], color="grey", lw=0.8)
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_title(f"{suite}: {r['descriptions']} descriptions, {r['families']} families")
        ax.set_xlabel("cosine threshold")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("pairs merged (%)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown(results: dict) -> str:
    t = results["default_threshold"]
    lines = [f"# Semantic reuse on the task suites (default threshold {t})", "",
             "Pairs of descriptions merged (the share of all pairs of that kind). `cos`: cosine >= threshold; "
             "`+lex`: and the lexical check passes. Command: `.venv/bin/python benchmarks/semantic_reuse.py`. "
             f"Compositional suite: {results['compositional_descriptions_per_family']} seeded descriptions per family, "
             f"families: {results['compositional_families']}.", ""]
    for suite, r in results["suites"].items():
        p = r["pairs"]
        lines += [f"## {suite}: {r['descriptions']} descriptions, {r['families']} families, {r['mirror_pairs']} mirror pairs",
                  "", f"Pairs: paraphrase {p['paraphrase']:,}, mirror {p['mirror']:,}, different {p['different']:,}. "
                  f"Canonical-text merges (layer 1): {r['canonical_merges']}.", "",
                  "| threshold | paraphrase cos | paraphrase +lex | different cos | different +lex | mirror cos | mirror +lex (pairs) |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for row in r["rows"]:
            lines.append(
                f"| {row['threshold']:.2f} | {100 * row['paraphrase_cosine']:.2f}% | {100 * row['paraphrase_guarded']:.2f}% | "
                f"{100 * row['different_cosine']:.4f}% | {100 * row['different_guarded']:.4f}% | "
                f"{100 * row['mirror_cosine']:.2f}% | {100 * row['mirror_guarded']:.2f}% ({row['mirror_guarded_pairs']}) |")
        lines += ["", f"Blocked by the lexical check (non-paraphrase pairs, cosine >= {MIN_T}): "
                  f"{r['blocked_by_lexical_check_above_min_threshold']}", ""]
        for kind, ex in r["closest_kept_nonparaphrase_pairs"].items():
            if ex:
                lines.append(f"Closest {kind} pairs the lexical check lets through:")
                lines += [f"- {s}: {a!r} / {b!r}" for s, a, b in ex]
                lines.append("")
    lines += ["## Serving simulation (each description once, seeded random order)", "",
              "| suite | threshold | requests | new adapters | exact reuse | right semantic reuse | false (different) | false (mirror) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for suite, rows in results["simulation"].items():
        for s in rows:
            lines.append(f"| {suite} | {s['threshold']} | {s['requests']} | {s['new']} | {s['exact']} | "
                         f"{s['right_semantic']} | {s['false_different']} | {s['false_mirror']} |")
    enc = results["encoder_ms_p50"]
    lines += ["", f"## Lookup time, brute force (d = {results['dim']}, torch on this CPU)", "",
              f"Baseline: one encoder pass of a description (needed for any new description) {enc:.2f} ms (p50).", "",
              "| entries | p50 ms | p99 ms | p50 / encoder pass | matrix MiB |", "|---:|---:|---:|---:|---:|"]
    for row in results["lookup"]:
        lines.append(f"| {row['entries']:,} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | "
                     f"{row['p50_ms'] / enc:.3f}x | {row['matrix_mib']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/results/semantic_reuse")
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "t2l_vllm" / "bench"))
    p.add_argument("--sim-thresholds", default="0.85,0.9,0.95,0.97")
    p.add_argument("--per-family", type=int, default=4, help="descriptions per compositional family (of 24)")
    p.add_argument("--all-families", action="store_true",
                   help="every compositional family, not only those in a mirror pair")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"default_threshold": DEFAULT_REUSE_THRESHOLD, "suites": {}, "simulation": {}}
    results["compositional_descriptions_per_family"] = args.per_family
    results["compositional_families"] = "all" if args.all_families else "mirror pairs only"
    for name, (texts, fams, mirrors) in suites(args.per_family, not args.all_families).items():
        emb = embed(texts, Path(args.cache))
        results["dim"] = emb.shape[1]
        t0 = time.perf_counter()
        results["suites"][name] = pair_rates(texts, fams, mirrors, emb)
        results["simulation"][name] = [
            simulate(texts, fams, mirrors, emb, float(t)) for t in
            sorted({*map(float, args.sim_thresholds.split(",")), DEFAULT_REUSE_THRESHOLD})
        ]
        print(f"{name}: {len(texts)} descriptions in {time.perf_counter() - t0:.0f} s", flush=True)
    results["encoder_ms_p50"] = encoder_time(suites(args.per_family, True)["v1"][0][:100])
    results["lookup"] = lookup_times(results["dim"])
    (out / "semantic_reuse.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "semantic_reuse.md").write_text(markdown(results))
    plot(results, out / "semantic_reuse.png")
    print(markdown(results))


if __name__ == "__main__":
    main()
