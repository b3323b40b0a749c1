"""ClusterConfig: the settings of `t2l-vllm serve-cluster` and of the Ray Serve application.

One frozen dataclass; the CLI's flags are derived from its fields (`add_arguments`),
and `serve run` / a RayService pass the same fields as the application's args
(`from_dict`). `serve_args` are the flags every replica's `t2l-vllm serve` gets:
t2l settings and vLLM flags alike, minus the few the cluster sets per replica.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .. import envs
from ..serving.config import ServeConfig

# Flags the cluster sets for each replica itself (or takes for the front door).
RESERVED_SERVE_FLAGS = {
    "--adapter-dir": "each replica gets a private adapter folder under --work-dir",
    "--shared-adapter-dir": "give it to serve-cluster itself",
    "--fast-dir": "each replica derives a private tmpfs folder from its adapter folder",
    "--host": "the front door listens on serve-cluster's --host; replicas listen on loopback",
    "--port": "the front door listens on serve-cluster's --port; replicas pick free loopback ports",
    "--api-key": "give it to serve-cluster itself; the front door and every replica check it",
    "--api-server-count": "one API server per replica; scale with --replicas",
}


# How the front door hands requests to Ray Serve (--routing).
ROUTING_POLICIES = ("affinity", "plain")


def _setting(default: Any, help: str, parse=str, choices: tuple | None = None):
    return field(default=default, metadata={"help": help, "parse": parse, "choices": choices})


@dataclass(frozen=True)
class ClusterConfig:
    """A front door plus `replicas` copies of `t2l-vllm serve`, sharing one adapter store."""

    replicas: int = _setting(2, "vLLM replicas, each with its own engine and hypernetwork", int)
    serve_args: tuple[str, ...] = _setting((), "flags for every replica's `t2l-vllm serve` (t2l and vLLM flags)")
    shared_adapter_dir: Path | None = _setting(
        None, "adapter folder every replica (and host) sees: adapters are generated once and loaded from it "
        "(default: <cache>/cluster/shared)", Path,
    )
    work_dir: Path | None = _setting(
        None, "node-local folder for each replica's private adapter folder and server log "
        "(default: <cache>/cluster/replicas)", Path,
    )
    api_key: str | None = _setting(None, "bearer key the front door and every replica require (env VLLM_API_KEY)")
    max_ongoing_requests: int = _setting(
        64, "requests one replica runs at once; past it, Ray routes a request for a held adapter to another replica "
        "(which then holds it too)", int,
    )
    max_adapters_per_replica: int | None = _setting(
        None, "adapter ids Ray's multiplexing tracks per replica, least recently used dropped "
        "(default: the replicas' --max-engine-adapters)", int,
    )
    replica_cpus: float = _setting(1.0, "Ray CPUs one replica reserves", float)
    replica_gpus: float = _setting(
        0.0, "Ray GPUs one replica reserves (Ray sets CUDA_VISIBLE_DEVICES for its server)", float,
    )
    routing: str = _setting(
        "affinity", "how the front door routes: 'affinity' forwards each request with its adapter id as Ray "
        "Serve's multiplexed model id (replicas that hold the adapter are preferred); 'plain' forwards without it "
        "(Ray Serve's power-of-two-choices on queue length alone: every replica may generate or load every "
        "adapter; for comparison)", str, ROUTING_POLICIES,
    )
    retries: int = _setting(
        3, "times the front door resends a request whose replica failed before answering", int,
    )
    start_timeout_s: float = _setting(900.0, "seconds a replica's server may take to start", float)

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {self.replicas}")
        if self.max_ongoing_requests < 1:
            raise ValueError(f"max_ongoing_requests must be >= 1, got {self.max_ongoing_requests}")
        if self.max_adapters_per_replica is not None and self.max_adapters_per_replica < 1:
            raise ValueError(f"max_adapters_per_replica must be >= 1, got {self.max_adapters_per_replica}")
        if self.routing not in ROUTING_POLICIES:
            raise ValueError(f"routing must be one of {', '.join(ROUTING_POLICIES)}, got {self.routing!r}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.replica_cpus < 0 or self.replica_gpus < 0:
            raise ValueError(f"replica_cpus and replica_gpus must be >= 0, got {self.replica_cpus}, {self.replica_gpus}")
        for arg in self.serve_args:
            flag = arg.split("=", 1)[0]
            if flag in RESERVED_SERVE_FLAGS:
                raise ValueError(f"{flag} is set by serve-cluster per replica: {RESERVED_SERVE_FLAGS[flag]}")
        self.serve_config()  # validates the t2l flags among serve_args (ValueError naming the problem)

    # ---- derived values -----------------------------------------------------------

    def serve_namespace(self) -> argparse.Namespace:
        """The t2l flags among `serve_args` (`--model` and ServeConfig's), as `t2l-vllm serve` parses them."""
        parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        parser.add_argument("--model")
        ServeConfig.add_arguments(parser)
        args, _ = parser.parse_known_args(list(self.serve_args))
        return args

    def serve_config(self, environ: Mapping[str, str] | None = None) -> ServeConfig:
        """The replicas' ServeConfig (`environ`: their environment; {} validates the flags alone)."""
        return ServeConfig.from_args(self.serve_namespace(), environ={} if environ is None else environ)

    def shared_dir(self) -> Path:
        return Path(self.shared_adapter_dir or envs.cache_dir() / "cluster" / "shared").expanduser()

    def replicas_dir(self) -> Path:
        return Path(self.work_dir or envs.cache_dir() / "cluster" / "replicas").expanduser()

    def adapters_per_replica(self) -> int:
        return self.max_adapters_per_replica or self.serve_config().max_engine_adapters

    # ---- where values come from ---------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        for f in dataclasses.fields(cls):
            if f.name == "serve_args":
                continue
            shown = "" if f.default is None else f" [default: {f.default}]"
            parser.add_argument(
                "--" + f.name.replace("_", "-"), dest=f.name, type=f.metadata["parse"], default=argparse.SUPPRESS,
                choices=f.metadata["choices"], help=f.metadata["help"] + shown,
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace, serve_args: list[str],
                  environ: Mapping[str, str] | None = None) -> "ClusterConfig":
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
        return cls.from_dict({**values, "serve_args": serve_args}, environ)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> "ClusterConfig":
        """From `serve run ... key=value` or a RayService's `args` (strings are parsed; serve_args may be one string)."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown cluster settings {', '.join(unknown)}; known: {', '.join(known)}")
        out: dict[str, Any] = {}
        for name, raw in values.items():
            if name == "serve_args":
                out[name] = tuple(shlex.split(raw) if isinstance(raw, str) else (str(a) for a in raw))
            elif raw is None or not isinstance(raw, str):
                out[name] = raw
            else:
                try:
                    out[name] = known[name].metadata["parse"](raw)
                except ValueError:
                    raise ValueError(f"cluster setting {name} has an invalid value {raw!r}") from None
        if out.get("api_key") is None:
            out["api_key"] = envs.get("VLLM_API_KEY", environ)
        return cls(**out)
