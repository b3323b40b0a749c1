"""Malformed requests against a real server, counted: no 5xx, no dropped connection (issue 14, item 1).

    .venv/bin/python benchmarks/fuzz_bench.py [--examples 5000]             # embedded default model
    .venv/bin/python benchmarks/fuzz_bench.py --tiny --examples 2000       # the test suite's tiny models
    .venv/bin/python benchmarks/fuzz_bench.py --base-url http://127.0.0.1:8000 --api-key KEY   # a running server
    .venv/bin/python benchmarks/fuzz_bench.py --model DIR --hypernet DIR -- --dtype float32
(arguments after `--` go to `t2l-vllm serve`.)

The cases are those of benchmarks/fuzz_cases.py, which tests/test_fuzz.py runs
for about a minute in CI: hypothesis draws --examples of them from `any_case`
(seeded with --seed, no shrinking) and each is sent over one keep-alive
connection, as a client would. An answer counts as a violation when
fuzz_cases.violations says so: a 5xx (other than the documented
EXPECTED_5XX), no answer at all (reset, closed, timed out), or a 4xx without
the OpenAI error JSON. /health is checked every --health-every cases and at the
end; the run stops early if the server stops answering it.

Outputs (in --out-dir, default benchmarks/results/reliability): fuzz.json and
fuzz.md (--name changes the stem): counts per case kind, per route and per
status, and the violations (the first 50 in full).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

if __package__ is None:  # run as `python benchmarks/fuzz_bench.py`: `benchmarks.*` resolves from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import hypothesis
from hypothesis import HealthCheck, Phase, given, settings

from benchmarks import fuzz_cases as fc
from benchmarks import reliability as R
from benchmarks.common import write_outputs
from t2l_vllm.serving.process import ServerProcess

DEFAULT_OUT = R.DEFAULT_OUT
KEPT_VIOLATIONS = 50


class ServerDown(Exception):
    """/health stopped answering 200: the rest of the run would measure nothing."""


def outcome_key(outcome: fc.Outcome) -> str:
    return str(outcome.status) if outcome.status is not None else outcome.error


class Tally:
    """Counts per kind, route and status; the violations."""

    def __init__(self):
        self.cases = 0
        self.statuses: Counter = Counter()
        self.by_kind: dict[str, Counter] = defaultdict(Counter)
        self.by_route: dict[str, Counter] = defaultdict(Counter)
        self.violations_by_route: Counter = Counter()
        self.expected_5xx: Counter = Counter()
        self.violations: list[dict] = []
        self.violation_count = 0
        self.health_checks = 0
        self.seconds_in_requests = 0.0

    def add(self, case: fc.Case, outcome: fc.Outcome, problems: list[str]) -> None:
        key = outcome_key(outcome)
        route = f"{case.method} {case.path}"
        self.cases += 1
        self.statuses[key] += 1
        self.by_kind[case.kind][key] += 1
        self.by_route[route][key] += 1
        self.seconds_in_requests += outcome.seconds
        if outcome.status is not None and (case.path, outcome.status) in fc.EXPECTED_5XX:
            self.expected_5xx[f"{route} {outcome.status}"] += 1
        if problems:
            self.violation_count += 1
            self.violations_by_route[route] += 1
            if len(self.violations) < KEPT_VIOLATIONS:
                self.violations.append({"case": case.describe(), "answer": key, "problems": problems})

    def report(self, settings_: dict, seconds: float, healthy: bool) -> dict:
        def family(key: str) -> str:
            return f"{key[0]}xx" if key.isdigit() else "no answer"

        families = Counter()
        for key, n in self.statuses.items():
            families[family(key)] += n
        no_answer = {k: n for k, n in self.statuses.items() if not k.isdigit()}
        unexpected_5xx = sum(n for k, n in self.statuses.items() if k.startswith("5")) - sum(self.expected_5xx.values())
        return {
            "settings": settings_,
            "totals": {
                "cases": self.cases,
                "violations": self.violation_count,
                "unexpected_5xx": unexpected_5xx,
                "expected_5xx": dict(self.expected_5xx),
                "no_answer": no_answer,
                "resets": no_answer.get("reset", 0),
                "by_family": dict(sorted(families.items())),
                "by_status": dict(sorted(self.statuses.items())),
                "healthy_at_end": healthy,
                "health_checks": self.health_checks,
                "seconds": round(seconds, 1),
                "seconds_in_requests": round(self.seconds_in_requests, 1),
            },
            "by_kind": {k: dict(sorted(c.items())) for k, c in sorted(self.by_kind.items())},
            "by_route": {
                r: {"cases": sum(c.values()), "violations": self.violations_by_route[r],
                    "statuses": dict(sorted(c.items()))}
                for r, c in sorted(self.by_route.items())
            },
            "expected_5xx_reasons": {f"{r} {s}": why for (r, s), why in fc.EXPECTED_5XX.items()},
            "violations": self.violations,
        }


def run_cases(client: httpx.Client, model: str, examples: int, seed: int, health_every: int, tally: Tally,
              log=print) -> None:
    """Draw `examples` cases and send them; raises ServerDown when /health stops answering."""

    def healthy() -> bool:
        tally.health_checks += 1
        try:
            return client.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    @hypothesis.seed(seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(fc.any_case(model))
    def one(case):
        outcome = fc.send(client, case)
        tally.add(case, outcome, fc.violations(case, outcome))
        if tally.cases % health_every == 0:
            if not healthy():
                raise ServerDown(f"/health failed after {tally.cases} cases")
            log(f"{tally.cases} cases, {tally.violation_count} violations, statuses {dict(tally.statuses)}")

    one()
    if not healthy():
        raise ServerDown(f"/health failed after {tally.cases} cases")


def markdown(report: dict) -> str:
    s, t = report["settings"], report["totals"]
    lines = [
        "# Fuzzing malformed requests (benchmarks/fuzz_bench.py)",
        "",
        f"Server: {s['server']}. {t['cases']} cases (hypothesis {s['hypothesis']}, seed {s['seed']}) "
        f"in {t['seconds']} s ({t['seconds_in_requests']} s waiting on answers).",
        "",
        f"- violations: **{t['violations']}** (5xx other than the expected ones: {t['unexpected_5xx']}, "
        f"resets: {t['resets']}, no answer at all: {sum(t['no_answer'].values())})",
        f"- expected 5xx: {t['expected_5xx'] or 'none'}",
        f"- healthy at the end: {t['healthy_at_end']} ({t['health_checks']} /health checks)",
        f"- by status: {t['by_status']}",
        "",
        "## Per route",
        "",
        "| route | cases | 2xx | 4xx | 5xx | no answer | violations |",
        "|---|---|---|---|---|---|---|",
    ]
    for route, r in report["by_route"].items():
        st = r["statuses"]

        def fam(prefix: str) -> int:
            return sum(n for k, n in st.items() if k.startswith(prefix))

        lines.append(f"| {route} | {r['cases']} | {fam('2')} | {fam('4')} | {fam('5')} | "
                     f"{sum(n for k, n in st.items() if not k.isdigit())} | {r['violations']} |")
    lines += ["", "## Per case kind", "", "| kind | cases | statuses |", "|---|---|---|"]
    for kind, st in report["by_kind"].items():
        lines.append(f"| {kind} | {sum(st.values())} | {st} |")
    if report["expected_5xx_reasons"]:
        lines += ["", "## Expected 5xx (not about malformed input)", ""]
        lines += [f"- {k}: {why}" for k, why in report["expected_5xx_reasons"].items()]
    lines += ["", "## Violations", ""]
    if not report["violations"]:
        lines.append("None.")
    for v in report["violations"]:
        lines.append(f"- `{v['answer']}` {v['case']}: {'; '.join(v['problems'])}")
    return "\n".join(lines) + "\n"


def no_plot(report: dict, path: Path) -> bool:
    return False


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=5000, help="cases to send (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed: the same seed sends the same cases")
    p.add_argument("--health-every", type=int, default=250, help="check /health every N cases")
    p.add_argument("--base-url", help="fuzz a running server (http://host:port) instead of starting one")
    p.add_argument("--api-key", help="its API key (with --base-url)")
    p.add_argument("--model", type=Path, help="base model folder (default: the embedded default model)")
    p.add_argument("--hypernet", type=Path, help="hypernetwork folder (default: the embedded one for the model)")
    p.add_argument("--tiny", action="store_true", help="the test suite's tiny random models (built once, cached)")
    p.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "t2l-fuzz-bench",
                   help="tiny models cache (the server's adapter folders are temporary)")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    p.add_argument("--name", default="fuzz", help="output file stem")
    return p


def main(argv: list[str] | None = None) -> dict:
    argv, serve_extra = R.split_serve_args(argv)
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="t2l-fuzz-") as tmp:
        server = None
        if args.base_url:
            url, key, described = args.base_url.rstrip("/"), args.api_key, f"running server {args.base_url}"
        else:
            model, hypernet = args.model, args.hypernet
            if args.tiny:
                model, hypernet = R.tiny_models(args.work_dir / "tiny-models")
            key = secrets.token_hex(8)
            serve_args = R.serve_args(
                model, hypernet, Path(tmp) / "adapters", Path(tmp) / "fast", args.tiny, serve_extra,
            )
            env = dict(R.TINY_ENV) if args.tiny else {}
            print(f"starting t2l-vllm serve {' '.join(serve_args)} ...", flush=True)
            server = ServerProcess(serve_args, Path(tmp) / "server.log", env=env, api_key=key)
            url = server.url
            which = f"--model {model}" if model else "the embedded default model"
            which = "the test suite's tiny models" if args.tiny else which
            described = f"t2l-vllm serve on {which}, started by the bench with --api-key"
        tally = Tally()
        healthy = True
        t0 = time.perf_counter()
        try:
            if server is not None:
                server.wait_ready(900)
                t0 = time.perf_counter()
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
                model_name = client.get("/v1/models").json()["data"][0]["id"]
                run_cases(client, model_name, args.examples, args.seed, args.health_every, tally)
        except ServerDown as e:
            healthy = False
            print(f"stopped: {e}", flush=True)
            if server is not None:
                print(server.tail(), flush=True)
        finally:
            if server is not None:
                server.stop()
        report = tally.report(
            {"examples": args.examples, "seed": args.seed, "server": described, "hypothesis": hypothesis.__version__,
             "health_every": args.health_every},
            time.perf_counter() - t0, healthy,
        )
    paths = write_outputs(report, args.out_dir, args.name, markdown, no_plot)
    t = report["totals"]
    print(f"cases {t['cases']}, violations {t['violations']}, unexpected 5xx {t['unexpected_5xx']}, "
          f"resets {t['resets']}, no answer {t['no_answer']}, healthy at end {t['healthy_at_end']}; "
          f"by status {t['by_status']}")
    print("written: " + ", ".join(paths.values()))
    return report


if __name__ == "__main__":
    main()
