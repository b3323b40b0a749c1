"""Affinity vs plain routing on a real `t2l-vllm serve-cluster`: serve_bench's load, every replica's metrics.

    nice -n 10 .venv/bin/python benchmarks/cluster_bench.py --replicas 2 --num-descriptions 8,32,128 \\
        --requests-per-description 3 --concurrency 8 --output-len 32 -- --enforce-eager
(arguments after `--` go to every replica's `t2l-vllm serve`.)

For each routing policy (`serve-cluster --routing affinity|plain`; plain forwards
without Ray Serve's multiplexed model id, so Ray's power-of-two-choices picks by
queue length alone), this script starts a cluster on a new local Ray with fresh
shared and work folders, and for each N runs serve_bench's load
(benchmarks/serving: the same warm-up, request plan and streaming client) in the
modes t2l-warm and t2l-cold: N descriptions made beforehand through
POST /v1/t2l/adapters (the warm set, routed like any request), then N new ones.
Between N it deletes every adapter (DELETE on every replica and the shared
folder), so each N starts from empty stores. The shared folder is on under both
policies: a description is generated once cluster-wide either way; what routing
changes is where adapters get adopted from it and registered in vLLM.

Per (policy, N), from every replica's /metrics (the front door's, labelled
`replica`) before and after the N: generations (t2l_adapter_cache_total{result=miss}),
adoptions from the shared folder (result=shared), vLLM registrations
(t2l_adapter_generation_seconds_count{stage=register}), engine evictions,
resident adapters at the end; the front door's routing counters; and serve_bench's
client-side TTFT, tokens/s and errors per mode.

Resumable: <out-dir>/results.json keeps every finished (policy, N), and a rerun
skips them (a policy whose Ns are all done starts no cluster; --fresh starts over).
A run during which a replica was replaced (Ray restarts one its memory monitor
killed, say) or a request failed is kept but marked invalid: left out of the
table and plot, and repeated by the next rerun.
--render-only rewrites results.md and routing.png from results.json.
Writes <out-dir>/{results.json,results.md,routing.png}; the clusters' logs go to --work-dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

if __package__ is None:  # run as `python benchmarks/cluster_bench.py`: `benchmarks.*` resolves from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import int_list, pyplot

POLICIES = ("affinity", "plain")
MODES = ("t2l-warm", "t2l-cold")
ROOT = Path(__file__).resolve().parents[1]


def policy_list(text: str) -> list[str]:
    policies = [p.strip() for p in text.split(",") if p.strip()]
    if not policies or any(p not in POLICIES for p in policies):
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(POLICIES)}, got {text!r}")
    return policies


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policies", type=policy_list, default=list(POLICIES),
                   help="comma-separated routing policies, each on its own cluster (default affinity,plain)")
    p.add_argument("--num-descriptions", type=int_list, default=[8, 32, 128],
                   help="comma-separated list of N, distinct descriptions per run (default 8,32,128)")
    p.add_argument("--replicas", type=int, default=2, help="serve-cluster --replicas (default 2)")
    p.add_argument("--requests-per-description", type=int, default=3, help="requests per description and mode (default 3)")
    p.add_argument("--prompt-len", type=int, default=32, help="prompt length in words, ~tokens (default 32)")
    p.add_argument("--output-len", type=int, default=32, help="output tokens per request, EOS ignored (default 32)")
    p.add_argument("--concurrency", type=int, default=8, help="closed loop: requests in flight (default 8)")
    p.add_argument("--warmup", type=int, default=4, help="serve_bench's warm-up requests per N (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of prompts and request order (default 0)")
    p.add_argument("--no-reset", action="store_true", help="keep the adapters of earlier Ns (default: delete them all)")
    p.add_argument("--out-dir", default="benchmarks/results/cluster/routing",
                   help="results.json, results.md, routing.png (default benchmarks/results/cluster/routing)")
    p.add_argument("--work-dir", default="runs/cluster_bench",
                   help="clusters' shared and replica folders (removed after each policy) and logs (default runs/cluster_bench)")
    p.add_argument("--start-timeout", type=float, default=1200, help="seconds to wait for every replica (default 1200)")
    p.add_argument("--fresh", action="store_true", help="ignore finished runs in results.json")
    p.add_argument("--render-only", action="store_true", help="only rewrite results.md and routing.png from results.json")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def split_serve_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Our arguments, and those after `--` (for every replica's `t2l-vllm serve`)."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def replica_serve_args(serve_args: list[str]) -> list[str]:
    """serve_bench --launch's rule: the t2l modes measure serving through adapters, whatever their confidence."""
    if any(a.startswith("--low-confidence-policy") for a in serve_args):
        return list(serve_args)
    return [*serve_args, "--low-confidence-policy", "adapter"]


def run_key(policy: str, n: int) -> str:
    return f"{policy}/N={n}"


# ---- the cluster ------------------------------------------------------------------------


def _children(pid: int) -> set[int]:
    """Every live descendant of `pid` (by /proc's parent links)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _with_env(marker: str) -> set[int]:
    """Live processes whose environment holds `marker` (NAME=value), e.g. this cluster's shared folder."""
    want, out = marker.encode(), set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if want in f.read().split(b"\0"):
                        out.add(int(entry))
            except OSError:
                continue
    return out


class Cluster:
    """`t2l-vllm serve-cluster --routing POLICY` on a new local Ray; `stop()` ends it and whatever it started."""

    def __init__(self, policy: str, replicas: int, serve_args: list[str], work: Path):
        from t2l_vllm.serving.process import free_port

        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "cluster.log"
        cmd = [
            sys.executable, "-m", "t2l_vllm.cli", "serve-cluster", "--replicas", str(replicas), "--routing", policy,
            "--address", "local", "--port", str(self.port), "--work-dir", str(work / "replicas"),
            "--shared-adapter-dir", str(work / "shared"), *serve_args,
        ]
        self.log = open(self.log_path, "w")
        print(f"starting: {' '.join(cmd)} (log {self.log_path})", file=sys.stderr)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        self.seen: set[int] = set()

    def wait_ready(self, replicas: int, timeout: float) -> float:
        import httpx

        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            self.seen |= _children(self.proc.pid)
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve-cluster exited with {self.proc.returncode}; see {self.log_path}")
            try:
                info = httpx.get(f"{self.url}/v1/t2l/cluster", timeout=10).json()
                if info.get("replicas_healthy", 0) >= replicas:
                    return time.monotonic() - t0
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(2)
        raise TimeoutError(f"{replicas} healthy replicas not reached in {timeout:.0f}s; see {self.log_path}")

    def stop(self) -> list[int]:
        """SIGTERM (serve.shutdown, ray.shutdown), then SIGKILL to whatever it started that is left; returns those pids."""
        self.seen |= _children(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=180)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        time.sleep(3)
        # Also servers orphaned earlier: a replica Ray killed while its vLLM server was starting up leaves that
        # server running under init (it ignores the guard's SIGTERM until its engine is up). They carry the
        # cluster's shared folder in their environment.
        self.seen |= _with_env(f"T2L_VLLM_SHARED_ADAPTER_DIR={self.work / 'shared'}")
        left = sorted(p for p in self.seen if os.path.exists(f"/proc/{p}") and _state(p) != "Z")
        for pid in left:  # only processes this cluster started, by pid
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()
        return left


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


# ---- metrics -----------------------------------------------------------------------------


def replica_metrics(text: str) -> dict:
    """The counters this benchmark compares, per replica, from the front door's /metrics; key "" is the front door."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            who = s.labels.get("replica", "")
            m = out.setdefault(who, {})
            if s.name == "t2l_adapter_cache_total":
                m[f"cache_{s.labels['result']}"] = s.value
            elif s.name == "t2l_adapter_generation_seconds_count" and s.labels.get("stage") == "register":
                m["registrations"] = s.value
            elif s.name == "t2l_adapter_evictions_total":
                m[f"evictions_{s.labels['tier']}"] = s.value
            elif s.name == "t2l_adapters_resident":
                m["resident"] = s.value
            elif s.name == "t2l_cluster_requests_total":
                m[f"routed_{s.labels['routing']}"] = s.value
            elif s.name in ("t2l_cluster_retries_total", "t2l_cluster_unavailable_total"):
                m[s.name.removeprefix("t2l_cluster_").removesuffix("_total")] = s.value
    return out


GAUGES = ("resident",)


def metric_deltas(before: dict, after: dict) -> dict:
    """after − before per replica (gauges: the value after); replicas only in `after` count from 0."""
    out = {}
    for who, values in after.items():
        prev = before.get(who, {})
        out[who] = {k: (v if k in GAUGES else v - prev.get(k, 0.0)) for k, v in values.items()}
    return out


def invalid_reason(before: dict, after: dict, failed: int) -> str | None:
    """Why a run cannot be compared: a replica replaced during it (its counters start again), or failed requests."""
    replaced = sorted(set(before) ^ set(after))
    if replaced:
        return f"replicas changed during the run ({', '.join(r or 'front door' for r in replaced)})"
    if any(v < 0 for d in metric_deltas(before, after).values() for k, v in d.items() if k not in GAUGES):
        return "a counter went down: a replica's server restarted during the run"
    if failed:
        return f"{failed} requests failed"
    return None


def totals(deltas: dict, n: int) -> dict:
    """Cluster-wide sums over the replicas and per distinct description (the warm set + the cold set: 2N)."""
    replicas = {who: d for who, d in deltas.items() if who}
    s = lambda key: int(round(sum(d.get(key, 0.0) for d in replicas.values())))  # noqa: E731
    front = deltas.get("", {})
    out = {
        "descriptions": 2 * n,
        "generations": s("cache_miss"),
        "shared_adoptions": s("cache_shared"),
        "registrations": s("registrations"),
        "engine_evictions": s("evictions_engine"),
        "resident_after": {who: int(d.get("resident", 0)) for who, d in sorted(replicas.items())},
        "registrations_by_replica": {who: int(d.get("registrations", 0)) for who, d in sorted(replicas.items())},
        "routed": {k.removeprefix("routed_"): int(v) for k, v in front.items() if k.startswith("routed_")},
        "retries": int(front.get("retries", 0)),
    }
    for key in ("generations", "shared_adoptions", "registrations"):
        out[f"{key}_per_description"] = round(out[key] / (2 * n), 3)
    return out


# ---- one policy ------------------------------------------------------------------------------


async def reset_adapters(http) -> int:
    """DELETE every adapter (every replica, and the shared copy); returns how many."""
    r = await http.get("/v1/t2l/adapters")
    r.raise_for_status()
    ids = [a["id"] for a in r.json()["data"]]
    for aid in ids:
        await http.delete(f"/v1/t2l/adapters/{aid}")
    return len(ids)


async def run_one_n(url: str, n: int, args, workload) -> dict:
    """serve_bench's load for one N (warm-up, warm set, modes), with the replicas' counters around it."""
    import httpx
    import openai

    from benchmarks.serving.runner import Context, discover_base, run_n, warm_up

    ctx = Context(url, None, workload, progress=not args.no_progress)
    tag = uuid.uuid4().hex[:10]
    timeout = httpx.Timeout(600.0, connect=30.0)
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=timeout) as client, \
            httpx.AsyncClient(base_url=url, timeout=timeout) as http:
        ctx.client, ctx.http = client, http
        deleted = 0 if args.no_reset else await reset_adapters(http)
        await discover_base(ctx)
        await warm_up(ctx, args.warmup, tag)
        before = replica_metrics((await http.get("/metrics")).text)
        t0 = time.perf_counter()
        run = await run_n(ctx, n, list(MODES), tag, vllm_bench=False)
        duration = time.perf_counter() - t0
        after = replica_metrics((await http.get("/metrics")).text)
        cluster = (await http.get("/v1/t2l/cluster")).json()
    deltas = metric_deltas(before, after)
    failed = sum(m["failed"] for m in run["modes"].values())
    return {
        "num_descriptions": n, "tag": tag, "adapters_deleted_before": deleted, "duration_s": round(duration, 1),
        "invalid": invalid_reason(before, after, failed),
        "serve_bench": run, "replicas": {k: v for k, v in deltas.items() if k}, "totals": totals(deltas, n),
        "cluster": {k: cluster.get(k) for k in ("routing_policy", "replicas_healthy", "max_adapters_per_replica",
                                                "most_replicas_per_adapter")},
        "load_after": os.getloadavg(), "mem_available_gb_after": _mem_available_gb(),
    }


def _mem_available_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def run_policy(policy: str, ns: list[int], args, serve_args: list[str], results: dict, out_dir: Path) -> None:
    from benchmarks.serving.workload import Workload

    workload = Workload(args.requests_per_description, args.prompt_len, args.output_len, args.concurrency,
                        None, "chat", args.seed)
    work = Path(args.work_dir).resolve() / f"{policy}-{time.strftime('%Y%m%d-%H%M%S')}"
    cluster = Cluster(policy, args.replicas, serve_args, work)
    try:
        ready_s = cluster.wait_ready(args.replicas, args.start_timeout)
        print(f"{policy}: {args.replicas} replicas ready after {ready_s:.0f}s", file=sys.stderr)
        for n in ns:
            print(f"{policy}: N={n} (load {os.getloadavg()[0]:.1f}, {_mem_available_gb()} GB available)", file=sys.stderr)
            result = asyncio.run(run_one_n(cluster.url, n, args, workload))
            result.update(policy=policy, cluster_ready_s=round(ready_s, 1), serve_args=serve_args)
            results["runs"][run_key(policy, n)] = result
            save(results, out_dir)
            t = result["totals"]
            print(f"{policy}: N={n} done in {result['duration_s']}s: generations {t['generations']}, "
                  f"adoptions {t['shared_adoptions']}, registrations {t['registrations']} for {2 * n} descriptions",
                  file=sys.stderr)
    finally:
        left = cluster.stop()
        if left:
            print(f"{policy}: killed {len(left)} processes left by the cluster: {left}", file=sys.stderr)
        for sub in ("shared", "replicas"):
            shutil.rmtree(work / sub, ignore_errors=True)


# ---- outputs ----------------------------------------------------------------------------------


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return str(v)


def rows(results: dict) -> list[dict]:
    """One flat row per finished (policy, N), in policy then N order."""
    out = []
    for r in results["runs"].values():
        if r.get("invalid"):
            continue
        modes = r["serve_bench"]["modes"]
        warm, cold = modes.get("t2l-warm", {}), modes.get("t2l-cold", {})
        t = r["totals"]
        out.append({
            "policy": r["policy"], "n": r["num_descriptions"],
            "generations_per_description": t["generations_per_description"],
            "adoptions_per_description": t["shared_adoptions_per_description"],
            "registrations_per_description": t["registrations_per_description"],
            "engine_evictions": t["engine_evictions"],
            # Registrations while serving descriptions every replica could already have had (made before the mode).
            "warm_registrations_per_n": round(warm["server"]["generation_ms"]["register"]["count"] / r["num_descriptions"], 3)
            if warm else None,
            "cold_ttft_p50": cold.get("ttft_ms", {}).get("p50"), "cold_ttft_p95": cold.get("ttft_ms", {}).get("p95"),
            "warm_ttft_p50": warm.get("ttft_ms", {}).get("p50"), "warm_ttft_p95": warm.get("ttft_ms", {}).get("p95"),
            "cold_tok_s": cold.get("output_tokens_per_s"), "warm_tok_s": warm.get("output_tokens_per_s"),
            "ok": sum(m.get("succeeded", 0) for m in modes.values()),
            "sent": sum(m.get("requests", 0) for m in modes.values()),
            "errors": sum(m.get("failed", 0) for m in modes.values()),
            "spill": t["routed"].get("spill", 0), "routed": sum(v for k, v in t["routed"].items() if k != "none"),
        })
    order = {p: i for i, p in enumerate(POLICIES)}
    return sorted(out, key=lambda x: (order.get(x["policy"], 9), x["n"]))


def markdown(results: dict) -> str:
    w = results.get("workload", {})
    lines = [
        f"Routing policies on `t2l-vllm serve-cluster --replicas {w.get('replicas', '?')}` "
        f"(replica flags: `{' '.join(w.get('serve_args', []))}`). Per N: N descriptions made through "
        f"POST /v1/t2l/adapters (warm set), then modes t2l-warm and t2l-cold (N new descriptions), "
        f"{w.get('requests_per_description')} requests per description and mode, concurrency {w.get('concurrency')}, "
        f"{w.get('output_len')} output tokens, prompt ~{w.get('prompt_len')} words. Per description: "
        "cluster-wide counts over the N's 2N descriptions (warm set + cold set), from every replica's /metrics.",
        "",
        "| routing | N | generations / desc | shared adoptions / desc | registrations / desc | t2l-warm registrations / N "
        "| engine evictions | cold TTFT p50 / p95 (ms) | warm TTFT p50 / p95 (ms) | cold / warm out tok/s | ok / sent "
        "| routed to another replica |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows(results):
        spill = f"{r['spill']} / {r['routed']}"
        lines.append(
            f"| {r['policy']} | {r['n']} | {_fmt(r['generations_per_description'])} | {_fmt(r['adoptions_per_description'])} "
            f"| {_fmt(r['registrations_per_description'])} | {_fmt(r['warm_registrations_per_n'])} | {r['engine_evictions']} "
            f"| {_fmt(r['cold_ttft_p50'])} / {_fmt(r['cold_ttft_p95'])} | {_fmt(r['warm_ttft_p50'])} / {_fmt(r['warm_ttft_p95'])} "
            f"| {_fmt(r['cold_tok_s'])} / {_fmt(r['warm_tok_s'])} | {r['ok']} / {r['sent']} | {spill} |"
        )
    invalid = [r for r in results["runs"].values() if r.get("invalid")]
    if invalid:
        lines += ["", "Not in the table or the plot (kept in results.json; a rerun repeats them): "
                  + "; ".join(f"{r['policy']} N={r['num_descriptions']}: {r['invalid']}" for r in invalid) + "."]
    lines += ["", "Per mode (server-side deltas summed over replicas; cache: hit / shared / miss):", "",
              "| routing | N | mode | ok / sent | cache hit / shared / miss | registrations | engine evictions "
              "| TTFT p50 first request per description (ms) | E2E p50 (ms) |",
              "|---|---|---|---|---|---|---|---|---|"]
    valid = sorted((r for r in results["runs"].values() if not r.get("invalid")),
                   key=lambda r: (r["policy"], r["num_descriptions"]))
    for r in valid:
        for mode, s in r["serve_bench"]["modes"].items():
            c = s["server"]["cache"]
            lines.append(
                f"| {r['policy']} | {r['num_descriptions']} | {mode} | {s['succeeded']} / {s['requests']} "
                f"| {c['hit']} / {c.get('shared', 0)} / {c['miss']} | {s['server']['generation_ms']['register']['count']} "
                f"| {s['server']['evictions']['engine']} | {_fmt(s['ttft_first_per_description_ms']['p50'])} "
                f"| {_fmt(s['e2e_ms']['p50'])} |"
            )
    lines += ["", "Registrations per replica and adapters resident after each N:", "",
              "| routing | N | registrations by replica | resident after | cluster ready after (s) | load avg (1 min) after |",
              "|---|---|---|---|---|---|"]
    for r in valid:
        t = r["totals"]
        lines.append(
            f"| {r['policy']} | {r['num_descriptions']} | {', '.join(map(str, t['registrations_by_replica'].values()))} "
            f"| {', '.join(map(str, t['resident_after'].values()))} | {_fmt(r.get('cluster_ready_s'))} "
            f"| {_fmt(r['load_after'][0] if r.get('load_after') else None)} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> bool:
    plt = pyplot()
    table = rows(results)
    if plt is None or not table:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colors = {"affinity": "tab:blue", "plain": "tab:orange"}
    for policy in POLICIES:
        pr = [r for r in table if r["policy"] == policy]
        if not pr:
            continue
        ns = [r["n"] for r in pr]
        c = colors[policy]
        axes[0].plot(ns, [r["registrations_per_description"] for r in pr], marker="o", color=c, label=f"{policy}: registrations")
        axes[0].plot(ns, [r["generations_per_description"] for r in pr], marker="s", ls=":", color=c, label=f"{policy}: generations")
        for mode, ls in (("cold", "-"), ("warm", "--")):
            axes[1].plot(ns, [r[f"{mode}_ttft_p50"] for r in pr], marker="o", ls=ls, color=c, label=f"{policy} {mode}")
            axes[2].plot(ns, [r[f"{mode}_tok_s"] for r in pr], marker="o", ls=ls, color=c, label=f"{policy} {mode}")
    ns_all = sorted({r["n"] for r in table})
    for ax, title in zip(axes, ("per distinct description (cluster-wide)", "TTFT p50 (ms)", "output tokens/s")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns_all, [str(n) for n in ns_all])
        ax.minorticks_off()
        ax.set_xlabel("distinct task descriptions N")
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    w = results.get("workload", {})
    fig.suptitle(f"serve-cluster, {w.get('replicas')} replicas: affinity vs plain routing "
                 f"({w.get('requests_per_description')} req/description/mode, concurrency {w.get('concurrency')}, "
                 f"{w.get('output_len')} tokens)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def save(results: dict, out_dir: Path) -> dict[str, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "markdown": out_dir / "results.md"}
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(paths["json"])
    paths["markdown"].write_text(markdown(results))
    if plot(results, out_dir / "routing.png"):
        paths["png"] = out_dir / "routing.png"
    return {k: str(v) for k, v in paths.items()}


def load(out_dir: Path, fresh: bool) -> dict:
    path = out_dir / "results.json"
    if path.exists() and not fresh:
        return json.loads(path.read_text())
    return {"runs": {}}


def main(argv: list[str] | None = None) -> dict:
    ours, serve_args = split_serve_args(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(ours)
    out_dir = Path(args.out_dir)
    results = load(out_dir, args.fresh)
    if args.render_only:
        print(markdown(results))
        print("wrote " + ", ".join(save(results, out_dir).values()), file=sys.stderr)
        return results
    serve_args = replica_serve_args(serve_args)
    workload = {"replicas": args.replicas, "serve_args": serve_args, "requests_per_description": args.requests_per_description,
                "prompt_len": args.prompt_len, "output_len": args.output_len, "concurrency": args.concurrency,
                "seed": args.seed, "warmup": args.warmup, "reset_between_n": not args.no_reset, "modes": list(MODES)}
    if results.get("workload") not in (None, workload) and results["runs"]:
        parser.error(f"{out_dir}/results.json holds runs of another workload {results['workload']}; use --fresh or another --out-dir")
    results["workload"] = workload
    results["note"] = ("Measured on a shared machine; compare the policies within this file, not the absolute times.")
    for policy in args.policies:
        todo = [n for n in args.num_descriptions
                 if run_key(policy, n) not in results["runs"] or results["runs"][run_key(policy, n)].get("invalid")]
        if not todo:
            print(f"{policy}: every N done (in {out_dir}/results.json)", file=sys.stderr)
            continue
        run_policy(policy, todo, args, serve_args, results, out_dir)
    paths = save(results, out_dir)
    print(markdown(results))
    print("wrote " + ", ".join(paths.values()), file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
