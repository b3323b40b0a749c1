"""Crash safety: `kill -9` of a serving `t2l-vllm serve` during generation, writing and
registration, then a restart on the same adapter folders (issue 14, item 5).

    .venv/bin/python benchmarks/crash_bench.py [--trials 20]                # embedded default model
    .venv/bin/python benchmarks/crash_bench.py --tiny --trials 20           # the test suite's tiny models
    .venv/bin/python benchmarks/crash_bench.py --model DIR --hypernet DIR -- --dtype float32
(arguments after `--` go to `t2l-vllm serve`.)

One server runs at a time, on one durable folder (--work-dir/adapters) and one
tmpfs fast folder (/dev/shm/t2l-crash-<uid>/fast) that every trial reuses, so
the store accumulates adapters across crashes. A trial:

  1. load: --concurrency clients send new descriptions without pause, as admin
     creates (POST /v1/t2l/adapters) and, every --completion-every request, as a
     completion with `task_description`. Every id of a 200 answer is
     "acknowledged" (the admin body's id, the completion's x-t2l-adapter-id).
  2. kill: SIGKILL to the server's whole process group (API server, engine
     core, workers), fired by one of four triggers, in turn:
       random         after a uniform random delay in [--min-delay, --max-delay]
       write-durable  the moment a writer creates a temp entry in the durable folder
       write-fast     the moment a writer creates a temp entry in the fast folder
       register       the moment an adapter folder is renamed into the fast folder
                      (the step before registration in vLLM)
     The event triggers (inotify) skip a random --min-skip..--max-skip matching events first.
  3. evidence: what the killed server left on disk says which phase it was in:
       writing-durable / writing-fast   temp entries in that folder
                                        (or a cut request whose adapter is complete in the
                                        durable folder only: put() between its two writes)
       registration                     a cut (unanswered) admin create whose adapter is
                                        complete in the folder vLLM loads from
       generation                       a cut request with nothing on disk yet
                                        (generating, or queued for the generation thread)
       serving                          a cut completion whose adapter is complete
                                        (registering it, or decoding)
     A kill can be in several phases at once; `phase` is the first of that list.
  4. restart on the same folders; after /health:
       leftovers    temp entries (dot names but the owner lock) in either folder:
                    the start-up sweep must have removed them all
       lost         acknowledged ids (this trial's, plus --recheck-older earlier ones;
                    all of them in the final check) that are not listed by
                    GET /v1/t2l/adapters or do not serve POST /v1/completions by id
                    (200 with model == id)
       corrupt      folders of either tier whose files do not match the SHA-256 in
                    t2l.json (and AdapterStore.verified_path on the durable tier);
                    corrupt served: such an id that answered 200
       regenerated  with --regenerate (default on): the stored files of every
                    acknowledged adapter are byte-identical to a fresh offline
                    generation (same checkpoint, same base name, same dtype)
The restarted server is the next trial's server. Goals: lost 0, corrupt served 0,
leftovers 0.

Resumable: the state (rows, acknowledged ids) is kept in --work-dir/state.json
after every trial; running the same command again continues where it stopped
(the first start then re-checks everything acknowledged so far). --fresh starts over.

Outputs (in --out-dir, default benchmarks/results/reliability): crash.json, crash.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ is None:  # run as `python benchmarks/crash_bench.py`: `benchmarks.*` resolves from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from benchmarks import reliability as R
from benchmarks.common import write_outputs
from t2l_vllm.adapter import ADAPTER_ID_RE
from t2l_vllm.serving.launch import has_flag
from t2l_vllm.serving.process import ServerProcess

MODES = ("random", "write-durable", "write-fast", "register")
PHASES = ("writing-durable", "writing-fast", "registration", "generation", "serving", "idle")
DEFAULT_WORK = Path(os.environ.get("TMPDIR", "/tmp")) / f"t2l-crash-bench-{os.getuid()}"
DEFAULT_OUT = R.DEFAULT_OUT


@dataclass
class Settings:
    trials: int = 20
    concurrency: int = 4
    completion_every: int = 3
    min_delay: float = 0.2
    max_delay: float = 4.0
    min_skip: int = 0
    max_skip: int = 4
    trigger_timeout: float = 120.0
    recheck_older: int = 10
    regenerate: bool = True
    seed: int = 0
    modes: tuple[str, ...] = MODES
    ready_timeout: float = 900.0
    # Event triggers count events only once this many answers of the trial were acknowledged: with
    # the first events of a burst (k <= 3) the kill can land before any answer, leaving nothing
    # acknowledged to check (what the test suite needs to exist; 0: count from the start).
    arm_after_acks: int = 0


@dataclass
class Load:
    """What the clients of one trial sent and got back."""

    sent: int = 0
    acked: dict[str, str] = field(default_factory=dict)  # id -> description
    cut: list[tuple[str, str]] = field(default_factory=list)  # (create | completion, description) the kill cut off
    failed: dict[str, int] = field(default_factory=dict)  # non-200 answers by status
    prompt_served: int = 0  # completions served without an adapter (low-confidence policy)


class CrashBench:
    def __init__(self, work_dir: Path, model: Path | None, hypernet: Path | None, tiny: bool,
                 serve_extra: list[str], settings: Settings, fast_dir: Path | None = None, fresh: bool = False,
                 log=print):
        self.work = Path(work_dir).absolute()
        self.model, self.hypernet, self.tiny = model, hypernet, tiny
        self.settings = settings
        self.durable = self.work / "adapters"
        self.fast = Path(fast_dir) if fast_dir else R.default_fast_dir("crash")
        self.logs = self.work / "logs"
        self.state_path = self.work / "state.json"
        self.log = log
        extra = list(serve_extra)
        # Every completion with a task_description makes an adapter; the store keeps all of them.
        if not has_flag(extra, "--low-confidence-policy"):
            extra += ["--low-confidence-policy", "adapter"]
        if not has_flag(extra, "--max-disk-adapters"):
            extra += ["--max-disk-adapters", "100000"]
        self.args = R.serve_args(model, hypernet, self.durable, self.fast, tiny=tiny, extra=extra)
        self.env = dict(R.TINY_ENV) if tiny else {}
        if fresh:
            shutil.rmtree(self.work, ignore_errors=True)
            shutil.rmtree(self.fast, ignore_errors=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.state = self._load_state()
        self.rng = random.Random(f"{settings.seed}-{len(self.state['rows'])}")
        self.generator = None
        self.server: ServerProcess | None = None
        self.base_name: str | None = None
        self.starts = 0
        self.fired_at: float | None = None

    # ---- state -------------------------------------------------------------------

    def _fingerprint(self) -> dict:
        return {"model": str(self.model or "default"), "hypernet": str(self.hypernet or "default"),
                "tiny": self.tiny, "durable": str(self.durable), "fast": str(self.fast)}

    def _load_state(self) -> dict:
        if self.state_path.is_file():
            state = json.loads(self.state_path.read_text())
            if state.get("fingerprint") == self._fingerprint():
                return state
            raise SystemExit(f"{self.state_path} belongs to another setup ({state.get('fingerprint')}); use --fresh "
                             "or another --work-dir")
        return {"fingerprint": self._fingerprint(), "rows": [], "acked": {}, "checks": [], "shm_start": None}

    def _save_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        tmp.replace(self.state_path)

    # ---- server ------------------------------------------------------------------

    def start(self, label: str) -> float:
        t0 = time.monotonic()
        self.server = ServerProcess(self.args, self.logs / f"{label}.log", env=self.env)
        self.starts += 1
        self.server.wait_ready(self.settings.ready_timeout)
        self.state.setdefault("pids", []).extend(p.pid for p in R.group_processes(self.server.proc.pid))
        if self.base_name is None:
            self.base_name = httpx.get(f"{self.server.url}/v1/models", timeout=30).json()["data"][0]["id"]
        return time.monotonic() - t0

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    # ---- one trial -----------------------------------------------------------------

    def description(self, trial: int, i: int) -> str:
        nonce = self.rng.getrandbits(32)
        return f"{self.rng.choice(R.TASKS)} (crash trial {trial}, request {i}, {nonce:08x})."

    async def _load(self, trial: int, killed: threading.Event, load: Load) -> None:
        s = self.settings
        counter = iter(range(1 << 30))

        async def worker(client: httpx.AsyncClient) -> None:
            while not killed.is_set():
                i = next(counter)
                desc = self.description(trial, i)
                sent_at = time.monotonic()
                kind = "completion" if s.completion_every and i % s.completion_every == s.completion_every - 1 else "create"
                try:
                    if kind == "completion":
                        r = await client.post("/v1/completions", json={
                            "model": self.base_name, "prompt": "Input: a short text.", "max_tokens": 2,
                            "temperature": 0, "task_description": desc})
                        aid = r.headers.get("x-t2l-adapter-id") if r.status_code == 200 else None
                        if r.status_code == 200 and aid is None:
                            load.prompt_served += 1
                    else:
                        r = await client.post("/v1/t2l/adapters", json={"task_description": desc})
                        aid = r.json().get("id") if r.status_code == 200 else None
                except (httpx.TransportError, ValueError):
                    fired = self.fired_at
                    if fired is None or sent_at < fired:  # the kill cut it off
                        load.sent += 1
                        load.cut.append((kind, desc))
                    continue  # else sent to a dead server: never counted
                load.sent += 1
                if aid is not None and ADAPTER_ID_RE.match(aid):
                    load.acked[aid] = desc
                elif r.status_code != 200:
                    load.failed[str(r.status_code)] = load.failed.get(str(r.status_code), 0) + 1

        limits = httpx.Limits(max_connections=s.concurrency + 2)
        async with httpx.AsyncClient(base_url=self.server.url, timeout=300, limits=limits) as client:
            await asyncio.gather(*[worker(client) for _ in range(s.concurrency)])

    def _trigger(self, mode: str, watch: R.DirWatch | None, killed: threading.Event, info: dict, load: Load) -> None:
        """Runs on its own thread: waits for the trigger, then kill -9 the server's process group."""
        s = self.settings
        t0 = time.monotonic()
        try:
            if mode == "random":
                delay = self.rng.uniform(s.min_delay, s.max_delay)
                info.update(delay_s=round(delay, 3))
                time.sleep(delay)  # the random kill delay itself
                info["trigger"] = "delay"
            else:
                skip = self.rng.randint(s.min_skip, max(s.min_skip, s.max_skip))
                info.update(skip=skip)
                seen, deadline = 0, t0 + s.trigger_timeout
                info["trigger"] = "timeout"
                while time.monotonic() < deadline:
                    hit = next((e for e in watch.events(deadline - time.monotonic()) if self._matches(mode, e)), None)
                    if hit is not None and len(load.acked) >= s.arm_after_acks:
                        seen += 1
                        if seen > skip:
                            info.update(trigger="event", event=hit.name)
                            break
            self.fired_at = time.monotonic()
            result = R.kill_group(self.server.proc)
            info.update(kill_after_s=round(result["signalled_at"] - t0, 3), survivors=result["survivors"])
        finally:
            killed.set()

    def _matches(self, mode: str, ev: R.DirEvent) -> bool:
        writing = ev.created and R.is_temp(ev.name) and ".deleted-" not in ev.name and ".meta-" not in ev.name
        if mode == "write-durable":
            return writing and ev.root == self.durable
        if mode == "write-fast":
            return writing and ev.root == self.fast
        if mode == "register":
            return ev.moved_in and ev.root == self.fast and bool(ADAPTER_ID_RE.match(ev.name))
        return False

    def _phases(self, at_kill: dict, load: Load) -> tuple[list[str], dict]:
        """Which phases the killed server was in, from what it left on disk; and the evidence:
        for each kind of cut request, how far its adapter got (none, temp, durable, fast)."""
        phases = []
        busy = lambda names: [n for n in names if ".deleted-" not in n]  # noqa: E731 (trash of evictions)
        if busy(at_kill["durable_temps"]):
            phases.append("writing-durable")
        durable, fast = set(at_kill["durable_ids"]), set(at_kill["fast_ids"])
        temp_ids = {R.temp_id(n) for n in busy(at_kill["durable_temps"]) + busy(at_kill["fast_temps"])}
        evidence = {"create": {}, "completion": {}}
        for kind, desc in load.cut:
            aid = self.generator.adapter_id(desc)
            if aid in load.acked:
                continue
            state = "fast" if aid in fast else "durable" if aid in durable else "temp" if aid in temp_ids else "none"
            evidence[kind][state] = evidence[kind].get(state, 0) + 1
        states = lambda kind: evidence[kind]  # noqa: E731
        # put() between its two writes (durable done, fast not started) is still writing the fast tier.
        if busy(at_kill["fast_temps"]) or "durable" in states("create") or "durable" in states("completion"):
            phases.append("writing-fast")
        if "fast" in states("create"):
            phases.append("registration")  # written, answer not sent: registering in vLLM (or answering)
        if "none" in states("create") or "none" in states("completion"):
            phases.append("generation")  # generating, or queued for the single generation thread
        if "fast" in states("completion"):
            phases.append("serving")  # a completion past its adapter: registering or decoding
        return phases or ["idle"], evidence

    def check(self, label: str, ids: dict[str, str]) -> dict:
        """Right after a (re)start: leftovers, listing, serving by id, digests, re-generation."""
        url = self.server.url
        after = R.tier_report(self.durable, self.fast)
        leftovers = after["durable_temps"] + [f"fast/{n}" for n in after["fast_temps"]]
        listed = {a["id"] for a in httpx.get(f"{url}/v1/t2l/adapters", timeout=60).json()["data"]}
        not_listed = sorted(a for a in ids if a not in listed)
        served, not_served = [], []
        with httpx.Client(base_url=url, timeout=300) as c:
            for aid in ids:
                r = c.post("/v1/completions", json={"model": aid, "prompt": "Input: a short text.", "max_tokens": 1,
                                                    "temperature": 0})
                ok = r.status_code == 200 and r.json().get("model") == aid
                (served if ok else not_served).append(aid if ok else f"{aid} ({r.status_code})")
        # What vLLM loaded from (the fast copies the served requests restored) and the durable tier.
        tiers = R.tier_report(self.durable, self.fast)
        bad = set(tiers["durable_bad"]) | set(tiers["fast_bad"])
        refused = R.verify_with_store(self.durable, tiers["durable_ids"])
        regen_checked, regen_mismatch = 0, []
        if self.settings.regenerate:
            for aid, desc in ids.items():
                if self.state["acked"].get(aid, {}).get("regenerated"):
                    continue
                regen_checked += 1
                if R.regenerated_digest(self.generator, desc) != R.recorded_digest(self.durable, aid):
                    regen_mismatch.append(aid)
                elif aid in self.state["acked"]:
                    self.state["acked"][aid]["regenerated"] = True
        return {
            "label": label,
            "checked": len(ids),
            "leftovers": leftovers,
            "not_listed": not_listed,
            "not_served": not_served,
            "corrupt_on_disk": sorted(bad | set(refused)),
            "corrupt_served": sorted(a for a in served if a in bad or a in refused),
            "regenerated": regen_checked,
            "regen_mismatch": regen_mismatch,
            "stored": len(tiers["durable_ids"]),
            "listed": len(listed),
        }

    def trial(self, index: int) -> dict:
        s = self.settings
        mode = s.modes[index % len(s.modes)]
        killed, info, load = threading.Event(), {}, Load()
        self.fired_at = None
        watch = R.DirWatch([self.durable, self.fast]) if mode != "random" else None
        trigger = threading.Thread(target=self._trigger, args=(mode, watch, killed, info, load), daemon=True)
        try:
            trigger.start()
            asyncio.run(self._load(index, killed, load))
            trigger.join()
        finally:
            if watch is not None:
                watch.close()
        R.close_log(self.server)
        at_kill = R.tier_report(self.durable, self.fast)
        phases, evidence = self._phases(at_kill, load)
        for aid, desc in load.acked.items():
            self.state["acked"][aid] = {"description": desc, "trial": index}
        restart_s = self.start(f"trial-{index:03d}-restart")
        older = [a for a in self.state["acked"] if a not in load.acked]
        sample = self.rng.sample(older, min(s.recheck_older, len(older)))
        ids = {a: self.state["acked"][a]["description"] for a in [*load.acked, *sample]}
        check = self.check(f"trial {index}", ids)
        return {
            "trial": index, "mode": mode, "trigger": info.get("trigger"), "kill_after_s": info.get("kill_after_s"),
            "skip": info.get("skip"), "event": info.get("event"), "survivors": info.get("survivors", []),
            "phase": phases[0], "phases": phases, "cut_requests": evidence, "sent": load.sent, "acked": len(load.acked),
            "cut": len(load.cut), "failed": load.failed, "prompt_served": load.prompt_served,
            "temps_at_kill": {"durable": len(at_kill["durable_temps"]), "fast": len(at_kill["fast_temps"])},
            "restart_s": round(restart_s, 1), **{k: v for k, v in check.items() if k != "label"},
        }

    # ---- the run -------------------------------------------------------------------

    def run(self) -> dict:
        s = self.settings
        if self.state["shm_start"] is None:
            self.state["shm_start"] = sorted(R.shm_entries())
        self.log(f"loading the generator for ids and re-generation ({self.model or 'default model'}) ...")
        self.generator = R.load_generator(self.model, self.hypernet)
        done = len(self.state["rows"])
        t_run = time.monotonic()
        try:
            label = f"start-{done:03d}"
            start_s = self.start(label)
            self.log(f"server up in {start_s:.0f} s ({self.server.url}); trials {done}..{s.trials - 1}")
            if done and self.state["acked"]:  # resumed: everything acknowledged so far must still serve
                self.state["checks"].append(self.check(f"resume before trial {done}", self._all_acked()))
                self._save_state()
            for i in range(done, s.trials):
                row = self.trial(i)
                self.state["rows"].append(row)
                self._save_state()
                self.log(self._row_line(row))
            final = self.check("final (all acknowledged)", self._all_acked())
            self.state["checks"].append(final)
            self.stop()
            # A server that owns its folders empties the fast tier when it exits.
            self.state["fast_after_shutdown"] = R.adapter_dirs(self.fast) + R.temps(self.fast)
            self._save_state()
        finally:
            self.stop()
        report = self.report(time.monotonic() - t_run)
        return report

    def _all_acked(self) -> dict[str, str]:
        return {a: v["description"] for a, v in self.state["acked"].items()}

    @staticmethod
    def _row_line(row: dict) -> str:
        return (f"trial {row['trial']:>3} {row['mode']:<13} {row['trigger']:<7} kill@{row['kill_after_s']}s "
                f"phase={'+'.join(row['phases']):<30} acked={row['acked']:<3} cut={row['cut']:<2} "
                f"lost={len(row['not_listed']) + len(row['not_served'])} corrupt_served={len(row['corrupt_served'])} "
                f"leftovers={len(row['leftovers'])} restart={row['restart_s']}s")

    def report(self, seconds: float) -> dict:
        rows, checks = self.state["rows"], self.state["checks"]
        every = [*rows, *checks]
        lost_ids = set()
        for c in every:
            lost_ids |= set(c["not_listed"]) | {x.split()[0] for x in c["not_served"]}
        own = {self.fast.parent.name} if self.fast.parent.parent == Path("/dev/shm") else set()
        shm_left = R.shm_leftovers(set(self.state["shm_start"] or []), set(self.state.get("pids", [])), own)
        totals = {
            "trials": len(rows),
            "kills_by_mode": {m: sum(r["mode"] == m for r in rows) for m in MODES},
            "kills_by_trigger": {t: sum(r["trigger"] == t for r in rows) for t in ("delay", "event", "timeout")},
            "kills_by_phase": {p: sum(r["phase"] == p for r in rows) for p in PHASES},
            "kills_in_phase_any": {p: sum(p in r["phases"] for r in rows) for p in PHASES},
            "acknowledged": len(self.state["acked"]),
            "lost": len(lost_ids),
            "corrupt_served": len({a for c in every for a in c["corrupt_served"]}),
            "corrupt_on_disk": len({a for c in every for a in c["corrupt_on_disk"]}),
            "leftovers_after_restart": sum(len(r["leftovers"]) for r in rows),
            "regenerated": sum(c["regenerated"] for c in every),
            "regen_mismatch": sum(len(c["regen_mismatch"]) for c in every),
            "survivors_after_kill": sum(len(r["survivors"]) for r in rows),
            "restart_s_median": round(statistics.median([r["restart_s"] for r in rows]), 1) if rows else None,
            "stored_at_end": checks[-1]["stored"] if checks else None,
            "fast_after_shutdown": len(self.state.get("fast_after_shutdown", [])),
            "shm_left": shm_left,
        }
        return {
            "benchmark": "crash_bench",
            "model": str(self.model) if self.model else "default (embedded SmolLM2-135M-Instruct + hypernetwork)",
            "tiny": self.tiny,
            "serve_args": self.args,
            "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.settings).items()},
            "seconds_this_session": round(seconds, 1),
            "server_starts_this_session": self.starts,
            "totals": totals,
            "lost_ids": sorted(lost_ids),
            "checks": checks,
            "trials": rows,
        }


def markdown(report: dict) -> str:
    t = report["totals"]
    ok = lambda v: "**ok**" if v == 0 else f"**FAIL ({v})**"  # noqa: E731
    lines = [
        "# Crash safety: kill -9 during generation, writing and registration",
        "",
        f"Model: {report['model']}. {t['trials']} trials, {t['acknowledged']} acknowledged adapters "
        f"({t['stored_at_end']} stored at the end). Server: `t2l-vllm serve {' '.join(report['serve_args'])}`.",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| lost (acknowledged, then not listed or not served by id after a restart) | {t['lost']} | 0 {ok(t['lost'])} |",
        f"| corrupt served (answered 200 with files not matching their digest) | {t['corrupt_served']} | 0 {ok(t['corrupt_served'])} |",
        f"| corrupt on disk (either tier, after restart) | {t['corrupt_on_disk']} | 0 {ok(t['corrupt_on_disk'])} |",
        f"| leftover temp entries after restart | {t['leftovers_after_restart']} | 0 {ok(t['leftovers_after_restart'])} |",
        f"| stored files = fresh re-generation (checked / mismatches) | {t['regenerated']} / {t['regen_mismatch']} | mismatches 0 {ok(t['regen_mismatch'])} |",
        f"| processes alive after kill -9 of the group | {t['survivors_after_kill']} | 0 |",
        f"| fast-tier entries left after the final graceful shutdown | {t['fast_after_shutdown']} | 0 |",
        f"| /dev/shm entries the killed processes left (vLLM psm_/sem / OpenMP __KMP_) "
        f"| {len(t['shm_left']['vllm'])} / {len(t['shm_left']['kmp'])} ({t['shm_left']['allocated_bytes'] // 1024} KiB) | |",
        f"| restart to /health, median | {t['restart_s_median']} s | |",
        "",
        "Kills by trigger mode: " + ", ".join(f"{k} {v}" for k, v in t["kills_by_mode"].items()) + ".  ",
        "Kills by phase (first of the phases the disk showed): "
        + ", ".join(f"{k} {v}" for k, v in t["kills_by_phase"].items() if v) + ".  ",
        "Kills that caught the phase at all: " + ", ".join(f"{k} {v}" for k, v in t["kills_in_phase_any"].items() if v) + ".",
        "",
        "| trial | trigger | kill after s | phases at kill | sent | acked | cut | temps at kill (durable/fast) "
        "| restart s | checked | lost | corrupt served | leftovers | regen ok |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["trials"]:
        lost = len(r["not_listed"]) + len(r["not_served"])
        lines.append(
            f"| {r['trial']} | {r['mode']} ({r['trigger']}) | {r['kill_after_s']} | {' + '.join(r['phases'])} "
            f"| {r['sent']} | {r['acked']} | {r['cut']} | {r['temps_at_kill']['durable']}/{r['temps_at_kill']['fast']} "
            f"| {r['restart_s']} | {r['checked']} | {lost} | {len(r['corrupt_served'])} | {len(r['leftovers'])} "
            f"| {r['regenerated'] - len(r['regen_mismatch'])}/{r['regenerated']} |"
        )
    lines += ["", "| check | ids | lost | corrupt served | corrupt on disk | leftovers |", "|---|---|---|---|---|---|"]
    for c in report["checks"]:
        lines.append(f"| {c['label']} | {c['checked']} | {len(c['not_listed']) + len(c['not_served'])} "
                     f"| {len(c['corrupt_served'])} | {len(c['corrupt_on_disk'])} | {len(c['leftovers'])} |")
    leftovers = sorted({x for r in report["trials"] for x in r["leftovers"]})
    if leftovers:
        lines += ["", f"Leftovers seen after restarts (first 10 of {len(leftovers)}): "
                  + ", ".join(f"`{x}`" for x in leftovers[:10])]
    if t["shm_left"]["vllm"]:
        lines += ["", "vLLM's shared memory left by the kills (not ours to clean: names are not tied to a "
                  "process): " + ", ".join(f"`{x}`" for x in t["shm_left"]["vllm"][:12])
                  + (" ..." if len(t["shm_left"]["vllm"]) > 12 else "")]
    lines += ["", PHASE_NOTE, ""]
    return "\n".join(lines)


PHASE_NOTE = (
    "How the phase is known: the kill is fired by a random delay or by an inotify event (a temp entry created "
    "in the durable or fast folder, or an adapter folder renamed into the fast folder); what the killed server "
    "left on disk then classifies it: temp entries = writing that tier (a cut request complete in the durable "
    "tier only: put() between its writes, counted as writing-fast); a cut admin create whose adapter is complete "
    "in the folder vLLM loads from = registration (or its answer under way); a cut request with nothing on disk "
    "= generation (or queued for the single generation thread); a cut completion whose adapter is complete = "
    "serving (registering or decoding). A kill is usually in several at once (4 clients); the first listed is "
    "the one counted in 'by phase'."
)


def no_plot(report: dict, path: Path) -> bool:
    return False


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Settings()
    p.add_argument("--trials", type=int, default=d.trials)
    p.add_argument("--model", type=Path, help="base model folder (default: the embedded default model)")
    p.add_argument("--hypernet", type=Path, help="hypernetwork folder (default: the embedded one for the model)")
    p.add_argument("--tiny", action="store_true",
                   help="the test suite's tiny random models (built once into --work-dir/tiny-models)")
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK,
                   help=f"durable adapter folder, server logs and resumable state (default {DEFAULT_WORK})")
    p.add_argument("--fast-dir", type=Path, help="tmpfs fast folder (default /dev/shm/t2l-crash-<uid>/fast)")
    p.add_argument("--fresh", action="store_true", help="forget the state and the adapters of an earlier run")
    p.add_argument("--concurrency", type=int, default=d.concurrency)
    p.add_argument("--completion-every", type=int, default=d.completion_every,
                   help="every N-th request is a completion with task_description (0: admin creates only)")
    p.add_argument("--min-delay", type=float, default=d.min_delay)
    p.add_argument("--max-delay", type=float, default=d.max_delay, help="random-trigger kill delay bounds, seconds")
    p.add_argument("--min-skip", type=int, default=d.min_skip)
    p.add_argument("--max-skip", type=int, default=d.max_skip,
                   help="event triggers skip a random min-skip..max-skip matching events first")
    p.add_argument("--trigger-timeout", type=float, default=d.trigger_timeout)
    p.add_argument("--arm-after-acks", type=int, default=d.arm_after_acks,
                   help="event triggers count events only after this many acknowledged answers in the trial")
    p.add_argument("--recheck-older", type=int, default=d.recheck_older,
                   help="earlier acknowledged ids re-checked after each restart (all of them at the end)")
    p.add_argument("--no-regenerate", dest="regenerate", action="store_false")
    p.add_argument("--modes", default=",".join(MODES), help=f"trigger modes in turn, from {', '.join(MODES)}")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    p.add_argument("--name", default="crash", help="output file stem")
    return p


def main(argv: list[str] | None = None) -> dict:
    argv, serve_extra = R.split_serve_args(argv)
    args = build_parser().parse_args(argv)
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if not modes or set(modes) - set(MODES):
        raise SystemExit(f"--modes: choose from {', '.join(MODES)}")
    settings = Settings(
        trials=args.trials, concurrency=args.concurrency, completion_every=args.completion_every,
        min_delay=args.min_delay, max_delay=args.max_delay, min_skip=args.min_skip, max_skip=args.max_skip,
        trigger_timeout=args.trigger_timeout, recheck_older=args.recheck_older, regenerate=args.regenerate,
        seed=args.seed, modes=modes, arm_after_acks=args.arm_after_acks,
    )
    model, hypernet = args.model, args.hypernet
    if args.tiny:
        model, hypernet = R.tiny_models(args.work_dir.absolute().parent / f"{args.work_dir.name}-tiny-models")
    bench = CrashBench(args.work_dir, model, hypernet, args.tiny, serve_extra, settings,
                       fast_dir=args.fast_dir, fresh=args.fresh, log=lambda m: print(m, flush=True))
    report = bench.run()
    paths = write_outputs(report, args.out_dir, args.name, markdown, no_plot)
    t = report["totals"]
    print(f"trials {t['trials']}, acknowledged {t['acknowledged']}, lost {t['lost']}, corrupt served "
          f"{t['corrupt_served']}, corrupt on disk {t['corrupt_on_disk']}, leftovers {t['leftovers_after_restart']}, "
          f"regenerated {t['regenerated']} (mismatch {t['regen_mismatch']}); phases {t['kills_by_phase']}")
    print("written: " + ", ".join(paths.values()))
    return report


if __name__ == "__main__":
    main()
