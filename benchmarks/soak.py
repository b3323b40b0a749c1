"""Soak: many distinct task descriptions through one server, resources sampled over time (issue 14, item 9).

    .venv/bin/python benchmarks/soak.py                                  # 10,000 descriptions, default model
    .venv/bin/python benchmarks/soak.py --descriptions 200 --tiny        # a quick run on the tiny test models
    .venv/bin/python benchmarks/soak.py --model DIR --hypernet DIR -- --dtype float32
(arguments after `--` go to `t2l-vllm serve`.)

Starts `t2l-vllm serve` with explicit bounds (--max-engine-adapters,
--max-disk-adapters, --adapter-dir, --fast-dir), then --clients concurrent
clients send --descriptions distinct new descriptions through the admin route
(POST /v1/t2l/adapters), interleaved (--chat-ratio chats per create) with chat
completions that reuse one of the last --reuse-window acknowledged
descriptions: by `task_description` or, --by-id-fraction of them, by `model`
id (an id evicted from disk answers 404, counted apart).

Every --sample-every seconds it samples: RSS and open file descriptors of every
process of the server's process group (API server, engine core, workers),
adapter folders and bytes in the fast folder (tmpfs) and the durable folder,
/dev/shm use, the t2l adapters vLLM lists (GET /v1/models), and the gauges
t2l_adapters_resident / t2l_adapters_on_disk (GET /metrics).

Checks (printed, and in the report): fast-folder adapters <= --max-engine-adapters
(the fast tier holds what the engine holds), durable adapters and the on-disk
gauge <= --max-disk-adapters, vLLM-held and resident <= --max-engine-adapters,
and after warm-up (the first sample at --warmup-fraction of the descriptions)
to the end: total RSS growth <= --rss-growth-limit-mb, open fds growth <=
--fd-growth-limit, /dev/shm growth <= --shm-growth-limit-mb. After the run the
server is stopped gracefully and the fast folder must be empty.

Outputs (in --out-dir, default benchmarks/results/reliability): soak.json,
soak.csv (the samples), soak.md (a row every ~10% of progress), soak.png.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import shutil
import statistics
import sys
import threading
import time
from collections import Counter, deque
from pathlib import Path

if __package__ is None:  # run as `python benchmarks/soak.py`: `benchmarks.*` resolves from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import psutil

from benchmarks import reliability as R
from benchmarks.common import pyplot, write_outputs
from t2l_vllm.adapter import ADAPTER_ID_RE
from t2l_vllm.serving.launch import flag_value, has_flag
from t2l_vllm.serving.process import ServerProcess

DEFAULT_WORK = Path(os.environ.get("TMPDIR", "/tmp")) / f"t2l-soak-{os.getuid()}"
DEFAULT_OUT = R.DEFAULT_OUT
MB = 1 << 20


class Progress:
    """Counters the clients update and the sampler reads (one event loop writes; reads are racy but atomic)."""

    def __init__(self):
        self.issued = 0
        self.created = 0  # admin creates answered (any status)
        self.status: Counter[str] = Counter()  # "<kind> <status>"
        self.latency: dict[str, list[float]] = {"create": [], "chat-description": [], "chat-id": []}
        self.recent: deque[tuple[str, str]] = deque()


class Sampler(threading.Thread):
    """Samples the server every `every` seconds (and once more on `stop`)."""

    def __init__(self, server: ServerProcess, durable: Path, fast: Path, progress: Progress, every: float):
        super().__init__(daemon=True)
        self.server, self.durable, self.fast = server, durable, fast
        self.progress, self.every = progress, every
        self.samples: list[dict] = []
        self.t0 = time.monotonic()
        self.done = threading.Event()
        self.client = httpx.Client(base_url=server.url, timeout=30)
        self._procs: dict[int, psutil.Process] = {}

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.sample()

    def stop(self) -> None:
        self.done.set()
        self.join()
        self.sample()
        self.client.close()

    def sample(self) -> dict:
        leader = self.server.proc.pid
        rss, fds, roles = {}, {}, Counter()
        for p in R.group_processes(leader):
            proc = self._procs.setdefault(p.pid, p)  # keep one Process object per pid (cheaper)
            try:
                role = R.process_role(proc, leader)
                roles[role] += 1
                name = role if roles[role] == 1 else f"{role}{roles[role]}"
                rss[name] = proc.memory_info().rss
                fds[name] = proc.num_fds()
            except psutil.Error:
                continue
        held = resident = on_disk = metrics_kb = lora_info_series = None
        try:
            models = self.client.get("/v1/models").json()["data"]
            held = sum(1 for m in models if ADAPTER_ID_RE.match(m["id"]))
            text = self.client.get("/metrics").text
            metrics_kb = round(len(text.encode()) / 1024, 1)
            # vLLM keeps one series per (running, waiting) adapter-name combination it ever saw.
            lora_info_series = sum(1 for line in text.splitlines() if line.startswith("vllm:lora_requests_info{"))
            m = R.parse_metrics(text)
            resident, on_disk = m.get("t2l_adapters_resident"), m.get("t2l_adapters_on_disk")
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        p = self.progress
        s = {
            "t_s": round(time.monotonic() - self.t0, 1),
            "descriptions": p.created,
            "chats": p.status.total() - p.created,
            "errors": sum(v for k, v in p.status.items() if not k.endswith(" 200")),
            "rss_mb": round(sum(rss.values()) / MB, 1),
            "rss_by_process_mb": {k: round(v / MB, 1) for k, v in rss.items()},
            "fds": sum(fds.values()),
            "fds_by_process": fds,
            "processes": len(rss),
            "fast_adapters": len(R.adapter_dirs(self.fast)),
            "fast_mb": round(R.dir_bytes(self.fast) / MB, 2),
            "durable_adapters": len(R.adapter_dirs(self.durable)),
            "durable_mb": round(R.dir_bytes(self.durable) / MB, 2),
            "shm_used_mb": round(R.shm_used() / MB, 1),
            "vllm_held": held,
            "resident_gauge": resident,
            "on_disk_gauge": on_disk,
            "metrics_kb": metrics_kb,
            "lora_info_series": lora_info_series,
        }
        self.samples.append(s)
        return s


async def drive(url: str, base_name: str, args, progress: Progress, rng: random.Random, log) -> None:
    n, nonce = args.descriptions, f"{rng.getrandbits(32):08x}"
    p_create = 1.0 / (1.0 + args.chat_ratio)
    next_report = [max(1, n // 10)]

    async def worker(client: httpx.AsyncClient) -> None:
        while progress.issued < n:
            if not progress.recent or rng.random() < p_create:
                i = progress.issued
                progress.issued += 1
                desc = f"{R.TASKS[i % len(R.TASKS)]} (soak {nonce} item {i})."
                kind, t0 = "create", time.perf_counter()
                try:
                    r = await client.post("/v1/t2l/adapters", json={"task_description": desc})
                    status = str(r.status_code)
                    if r.status_code == 200:
                        progress.recent.append((desc, r.json()["id"]))
                        while len(progress.recent) > args.reuse_window:
                            progress.recent.popleft()
                except httpx.HTTPError as e:
                    status = type(e).__name__
                progress.created += 1
                if progress.created >= next_report[0]:
                    next_report[0] += max(1, n // 10)
                    log(f"{progress.created}/{n} descriptions; answers {dict(progress.status)}")
            else:
                desc, aid = rng.choice(progress.recent)
                by_id = rng.random() < args.by_id_fraction
                kind, t0 = ("chat-id" if by_id else "chat-description"), time.perf_counter()
                body = {"model": aid if by_id else base_name, "max_tokens": args.max_tokens, "temperature": 0,
                        "messages": [{"role": "user", "content": f"Input {rng.randint(0, 999)}: a short text."}]}
                if not by_id:
                    body["task_description"] = desc
                try:
                    r = await client.post("/v1/chat/completions", json=body)
                    status = str(r.status_code)
                except httpx.HTTPError as e:
                    status = type(e).__name__
            progress.status[f"{kind} {status}"] += 1
            progress.latency[kind].append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=args.clients + 2)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        await asyncio.gather(*[worker(client) for _ in range(args.clients)])


def summarize(samples: list[dict], args, engine_bound: int, disk_bound: int) -> dict:
    n = args.descriptions
    warm = next((s for s in samples if s["descriptions"] >= args.warmup_fraction * n), samples[0])
    end = samples[-1]
    after = [s for s in samples if s["t_s"] >= warm["t_s"]]

    def peak(key):
        vals = [s[key] for s in samples if s[key] is not None]
        return max(vals) if vals else None

    def bound_check(name, key, bound):
        worst = peak(key)
        if worst is None:
            verdict = "not measured"
        elif worst <= bound:
            verdict = "ok"
        elif worst <= bound + args.clients:
            verdict = f"over by {worst - bound} (<= clients {args.clients}: adapters in flight)"
        else:
            verdict = "FAIL"
        return {"check": name, "max": worst, "bound": bound, "verdict": verdict}

    def growth_check(name, key, limit, unit):
        if warm.get(key) is None or end.get(key) is None:
            return {"check": name, "warm": warm.get(key), "end": end.get(key), "growth": None,
                    "peak_after_warmup": None, "limit": limit, "unit": unit, "verdict": "not measured"}
        g = round(end[key] - warm[key], 1)
        peak_after = max(s[key] for s in after if s.get(key) is not None)
        return {"check": name, "warm": warm[key], "end": end[key], "growth": g, "peak_after_warmup": peak_after,
                "limit": limit, "unit": unit, "verdict": "ok" if g <= limit else "FAIL"}

    roles = sorted({k for s in samples for k in s["rss_by_process_mb"]})
    per_process = {r: round(end["rss_by_process_mb"].get(r, 0) - warm["rss_by_process_mb"].get(r, 0), 1) for r in roles}
    checks = [
        bound_check("fast-folder adapters <= max-engine-adapters", "fast_adapters", engine_bound),
        bound_check("vLLM-held adapters (/v1/models) <= max-engine-adapters", "vllm_held", engine_bound),
        bound_check("t2l_adapters_resident <= max-engine-adapters", "resident_gauge", engine_bound),
        bound_check("durable adapters <= max-disk-adapters", "durable_adapters", disk_bound),
        bound_check("t2l_adapters_on_disk <= max-disk-adapters", "on_disk_gauge", disk_bound),
        growth_check("RSS of all server processes, growth after warm-up", "rss_mb", args.rss_growth_limit_mb, "MB"),
        growth_check("open fds of all server processes, growth after warm-up", "fds", args.fd_growth_limit, "fds"),
        growth_check("/dev/shm used, growth after warm-up", "shm_used_mb", args.shm_growth_limit_mb, "MB"),
        growth_check("/metrics response size, growth after warm-up", "metrics_kb", args.metrics_growth_limit_kb, "KiB"),
    ]
    return {"warmup_sample": warm, "end_sample": end, "rss_growth_by_process_mb": per_process, "checks": checks}


def decile_rows(samples: list[dict], n: int) -> list[dict]:
    """The first sample at or past each 10% of the descriptions (plus the first and last)."""
    rows, seen = [samples[0]], {id(samples[0])}
    for k in range(1, 11):
        s = next((s for s in samples if s["descriptions"] >= k * n / 10), None)
        if s is not None and id(s) not in seen:
            rows.append(s)
            seen.add(id(s))
    if id(samples[-1]) not in seen:
        rows.append(samples[-1])
    return rows


def markdown(report: dict) -> str:
    c = report["config"]
    sm = report["summary"]
    lines = [
        "# Soak: distinct task descriptions through one server",
        "",
        f"Model: {report['model']}. {c['descriptions']} descriptions, {c['clients']} clients, "
        f"{c['chat_ratio']} chats per create (reusing the last {c['reuse_window']}, {c['by_id_fraction']:.0%} by id), "
        f"bounds: engine {c['max_engine_adapters']}, disk {c['max_disk_adapters']}. "
        f"{report['seconds']:.0f} s ({report['descriptions_per_s']:.2f} descriptions/s). "
        f"Server: `t2l-vllm serve {' '.join(report['serve_args'])}`.",
        "",
        "| check | observed | bound | verdict |",
        "|---|---|---|---|",
    ]
    for ch in sm["checks"]:
        if "growth" in ch and ch["growth"] is None:
            obs, bound = "not measured", f"growth <= {ch['limit']} {ch['unit']}"
        elif "growth" in ch:
            obs = f"{ch['warm']} -> {ch['end']} ({ch['growth']:+} {ch['unit']}; peak after warm-up {ch['peak_after_warmup']})"
            bound = f"growth <= {ch['limit']} {ch['unit']}"
        else:
            obs, bound = f"max {ch['max']}", ch["bound"]
        lines.append(f"| {ch['check']} | {obs} | {bound} | {ch['verdict']} |")
    lines.append(f"| fast folder after graceful shutdown | {report['fast_after_shutdown']} entries | 0 | "
                 f"{'ok' if report['fast_after_shutdown'] == 0 else 'FAIL'} |")
    lines += ["", "RSS growth after warm-up by process (MB): "
              + ", ".join(f"{k} {v:+}" for k, v in sm["rss_growth_by_process_mb"].items()) + ".", "",
              "Answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(report["answers"].items())) + ".", ""]
    roles = sorted({k for s in report["samples"] for k in s["rss_by_process_mb"]})
    lines += [
        "| t (s) | descriptions | chats | errors | RSS total MB | " + " | ".join(f"RSS {r}" for r in roles)
        + " | fds | fast n / MB | durable n / MB | /dev/shm MB | vLLM held | resident | on disk "
        "| /metrics KiB (lora_requests_info series) |",
        "|" + "---|" * (13 + len(roles)),
    ]
    for s in decile_rows(report["samples"], c["descriptions"]):
        lines.append(
            f"| {s['t_s']} | {s['descriptions']} | {s['chats']} | {s['errors']} | {s['rss_mb']} | "
            + " | ".join(str(s["rss_by_process_mb"].get(r, "")) for r in roles)
            + f" | {s['fds']} | {s['fast_adapters']} / {s['fast_mb']} | {s['durable_adapters']} / {s['durable_mb']} "
            f"| {s['shm_used_mb']} | {s['vllm_held']} | {_num(s['resident_gauge'])} | {_num(s['on_disk_gauge'])} "
            f"| {s.get('metrics_kb')} ({s.get('lora_info_series')}) |"
        )
    lines.append("")
    return "\n".join(lines)


def _num(v):
    return "" if v is None else int(v)


def plot(report: dict, path: Path) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    samples, c = report["samples"], report["config"]
    x = [s["descriptions"] for s in samples]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
    ax = axes[0][0]
    # Change against the warm-up sample: a few MB of growth are invisible on a 3 GB scale.
    w = report["summary"]["warmup_sample"]
    ax.plot(x, [s["rss_mb"] - w["rss_mb"] for s in samples], label=f"total ({w['rss_mb']:.0f} MB at warm-up)",
            linewidth=2)
    for r in sorted({k for s in samples for k in s["rss_by_process_mb"]}):
        base = w["rss_by_process_mb"].get(r)
        if base is not None:
            ax.plot(x, [s["rss_by_process_mb"].get(r, base) - base for s in samples], label=f"{r} ({base:.0f} MB)")
    ax.axvline(w["descriptions"], color="grey", linestyle=":", label="warm-up")
    ax.axhline(report["config"]["rss_growth_limit_mb"], color="red", linestyle="--", linewidth=0.8,
               label="growth limit")
    ax.set_title("RSS change since warm-up (MB)")
    ax.legend(fontsize=8)
    ax = axes[0][1]
    ax.plot(x, [s["fds"] for s in samples], label="open fds (all processes)")
    ax.set_title("open file descriptors (left), /metrics KiB (right)")
    ax.set_ylabel("fds")
    twin = ax.twinx()
    twin.plot(x, [s.get("metrics_kb") for s in samples], color="C3", label="/metrics KiB")
    twin.set_ylabel("/metrics KiB")
    ax = axes[1][0]
    ax.plot(x, [s["fast_adapters"] for s in samples], label="fast folder")
    ax.plot(x, [s["durable_adapters"] for s in samples], label="durable folder")
    ax.plot(x, [s["vllm_held"] for s in samples], label="vLLM held")
    ax.axhline(c["max_engine_adapters"], color="C0", linestyle="--", linewidth=0.8, label="max-engine-adapters")
    ax.axhline(c["max_disk_adapters"], color="C1", linestyle="--", linewidth=0.8, label="max-disk-adapters")
    ax.set_title("adapters")
    ax.set_xlabel("descriptions created")
    ax.legend(fontsize=8)
    ax = axes[1][1]
    ax.plot(x, [s["fast_mb"] for s in samples], label="fast folder")
    ax.plot(x, [s["durable_mb"] for s in samples], label="durable folder")
    ax.plot(x, [s["shm_used_mb"] for s in samples], label="/dev/shm used")
    ax.set_title("MB on tmpfs / disk")
    ax.set_xlabel("descriptions created")
    ax.legend(fontsize=8)
    fig.suptitle(f"soak: {c['descriptions']} descriptions, {report['model_short']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_csv(samples: list[dict], path: Path) -> None:
    roles = sorted({k for s in samples for k in s["rss_by_process_mb"]})
    flat = [k for k in samples[0] if not isinstance(samples[0][k], dict)]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(flat + [f"rss_mb_{r}" for r in roles] + [f"fds_{r}" for r in roles])
        for s in samples:
            w.writerow([s[k] for k in flat] + [s["rss_by_process_mb"].get(r, "") for r in roles]
                       + [s["fds_by_process"].get(r, "") for r in roles])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--descriptions", type=int, default=10_000, help="distinct descriptions created (admin route)")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients")
    p.add_argument("--chat-ratio", type=float, default=1.0, help="chat completions per create, on average")
    p.add_argument("--reuse-window", type=int, default=64, help="chats reuse one of the last N acknowledged descriptions")
    p.add_argument("--by-id-fraction", type=float, default=0.5, help="share of chats that address the adapter by id")
    p.add_argument("--max-tokens", type=int, default=4)
    p.add_argument("--max-engine-adapters", type=int, default=16, help="passed to the server")
    p.add_argument("--max-disk-adapters", type=int, default=256, help="passed to the server")
    p.add_argument("--sample-every", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--warmup-fraction", type=float, default=0.1,
                   help="growth is measured from the first sample at this share of the descriptions")
    p.add_argument("--rss-growth-limit-mb", type=float, default=100.0)
    p.add_argument("--fd-growth-limit", type=float, default=32.0)
    p.add_argument("--shm-growth-limit-mb", type=float, default=64.0)
    p.add_argument("--metrics-growth-limit-kb", type=float, default=256.0,
                   help="growth of the /metrics response (vLLM keeps a series per adapter-name combination)")
    p.add_argument("--model", type=Path, help="base model folder (default: the embedded default model)")
    p.add_argument("--hypernet", type=Path, help="hypernetwork folder (default: the embedded one for the model)")
    p.add_argument("--tiny", action="store_true", help="the test suite's tiny random models (built once)")
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK, help="durable adapter folder and the server log; "
                   f"emptied at start (default {DEFAULT_WORK})")
    p.add_argument("--fast-dir", type=Path, help="tmpfs fast folder (default /dev/shm/t2l-soak-<uid>/fast)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    p.add_argument("--name", default="soak", help="output file stem")
    return p


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    serve_extra = []
    if "--" in argv:
        serve_extra, argv = argv[argv.index("--") + 1:], argv[:argv.index("--")]
    args = build_parser().parse_args(argv)
    for flag in ("--max-engine-adapters", "--max-disk-adapters", "--adapter-dir", "--fast-dir"):
        if has_flag(serve_extra, flag):
            raise SystemExit(f"give {flag} to soak.py itself, not after `--`: the checks need it")
    work = args.work_dir.absolute()
    model, hypernet = args.model, args.hypernet
    if args.tiny:
        model, hypernet = R.tiny_models(work.parent / f"{work.name}-tiny-models")
    durable = work / "adapters"
    fast = (args.fast_dir or R.default_fast_dir("soak")).absolute()
    shutil.rmtree(durable, ignore_errors=True)
    shutil.rmtree(fast, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    extra = list(serve_extra)
    if not has_flag(extra, "--low-confidence-policy"):
        extra += ["--low-confidence-policy", "adapter"]  # every description makes an adapter
    extra += ["--max-engine-adapters", str(args.max_engine_adapters), "--max-disk-adapters", str(args.max_disk_adapters)]
    serve = R.serve_args(model, hypernet, durable, fast, tiny=args.tiny, extra=extra)
    log = lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True)  # noqa: E731

    log(f"starting t2l-vllm serve {' '.join(serve)}")
    server = ServerProcess(serve, work / "server.log", env=dict(R.TINY_ENV) if args.tiny else {})
    progress, rng = Progress(), random.Random(args.seed)
    try:
        t_start = time.monotonic()
        server.wait_ready(900)
        log(f"server up in {time.monotonic() - t_start:.0f} s at {server.url}")
        base_name = httpx.get(f"{server.url}/v1/models", timeout=30).json()["data"][0]["id"]
        sampler = Sampler(server, durable, fast, progress, args.sample_every)
        sampler.sample()
        sampler.start()
        t0 = time.monotonic()
        try:
            asyncio.run(drive(server.url, base_name, args, progress, rng, log))
        finally:
            sampler.stop()
        seconds = time.monotonic() - t0
        server.stop()
        fast_after = len(R.adapter_dirs(fast) + R.temps(fast))
    finally:
        server.stop()
    samples = sampler.samples
    engine_bound = int(flag_value(serve, "--max-engine-adapters"))
    disk_bound = int(flag_value(serve, "--max-disk-adapters"))
    summary = summarize(samples, args, engine_bound, disk_bound)
    latency = {k: {"n": len(v), "median_s": round(statistics.median(v), 4) if v else None,
                   "p99_s": round(sorted(v)[int(0.99 * (len(v) - 1))], 4) if v else None}
               for k, v in progress.latency.items()}
    report = {
        "benchmark": "soak",
        "model": str(model) if model else "default (embedded SmolLM2-135M-Instruct + hypernetwork)",
        "model_short": "tiny test models" if args.tiny else (Path(model).name if model else "default model"),
        "tiny": args.tiny,
        "serve_args": serve,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "seconds": round(seconds, 1),
        "descriptions_per_s": round(progress.created / seconds, 3) if seconds else None,
        "answers": dict(progress.status),
        "latency": latency,
        "fast_after_shutdown": fast_after,
        "summary": summary,
        "samples": samples,
    }
    paths = write_outputs(report, args.out_dir, args.name, markdown, plot)
    write_csv(samples, args.out_dir / f"{args.name}.csv")
    paths["csv"] = str(args.out_dir / f"{args.name}.csv")
    for ch in summary["checks"]:
        shown = (f"{ch['warm']} -> {ch['end']} ({ch['growth']:+} {ch['unit']})" if ch.get("growth") is not None
                 else f"max {ch['max']} (bound {ch['bound']})")
        print(f"{ch['verdict']:>6}  {ch['check']}: {shown}")
    print(f"fast folder after shutdown: {fast_after} entries; {progress.created} descriptions in {seconds:.0f} s "
          f"({report['descriptions_per_s']}/s); answers {dict(progress.status)}")
    print("written: " + ", ".join(paths.values()))
    return report


if __name__ == "__main__":
    main()
