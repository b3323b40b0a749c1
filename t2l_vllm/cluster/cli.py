"""`t2l-vllm serve-cluster`: start (or join) Ray, run the application, stop it on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .config import ClusterConfig


def add_parser(sub) -> None:
    p = sub.add_parser(
        "serve-cluster",
        allow_abbrev=False,  # an abbreviation must never swallow a flag meant for the replicas
        help="serve through N vLLM replicas on Ray Serve: one front door, adapters shared and routed by id",
        description="Runs the Ray Serve application of t2l_vllm.cluster: an OpenAI-compatible front door on "
        "--host/--port and --replicas copies of `t2l-vllm serve`. Arguments not listed here go to every "
        "replica's `t2l-vllm serve` (t2l flags like --max-engine-adapters, vLLM flags like --enforce-eager).",
    )
    ClusterConfig.add_arguments(p)
    p.add_argument("--host", default="127.0.0.1", help="front door address [default: 127.0.0.1]")
    p.add_argument("--port", type=int, default=8000, help="front door port [default: 8000]")
    p.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray started here)")
    p.add_argument("--app-name", default="t2l", help="Ray Serve application name [default: t2l]")
    p.set_defaults(func=run, passthrough=True)


def run(args: argparse.Namespace, serve_args: list[str]) -> int:
    config = ClusterConfig.from_args(args, serve_args)  # ValueError: exit status 2
    try:
        import ray
        from ray import serve
    except ImportError:
        raise ValueError("serve-cluster needs Ray Serve: T2L_EXTRA=cpu,ray bash scripts/install.sh") from None

    from .app import build_app

    ray.init(address=args.address, include_dashboard=False, logging_level="WARNING")
    # After ray.init, which installs handlers of its own that end the process at once.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        print(f"t2l-vllm serve-cluster: starting {config.replicas} replicas "
              f"(shared adapters in {config.shared_dir()})", file=sys.stderr, flush=True)
        serve.run(build_app(config), name=args.app_name, route_prefix="/")
        print(f"t2l-vllm serve-cluster: ready on http://{args.host}:{args.port}/v1", file=sys.stderr, flush=True)
        stop.wait()
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
    return 0
