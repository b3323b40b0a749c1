"""Start-up: the server environment keeps vLLM's compile cache reusable on CPU, and the start-up benchmark reads vLLM's log."""

from __future__ import annotations

from benchmarks import startup_bench
from t2l_vllm.serving.config import ServeConfig
from t2l_vllm.serving.launch import CPU_COMPILE_ENV, serve_command


def test_cpu_serve_turns_off_vllm_aot_compile_unless_the_user_set_it(tiny_hypernet_dir, tiny_base_dir):
    config = ServeConfig.from_env({}, hypernet_dir=tiny_hypernet_dir)
    _, env = serve_command(str(tiny_base_dir), config, [], {}, on_cpu=True)
    assert env["VLLM_USE_AOT_COMPILE"] == "0" and CPU_COMPILE_ENV == {"VLLM_USE_AOT_COMPILE": "0"}
    _, env = serve_command(str(tiny_base_dir), config, [], {"VLLM_USE_AOT_COMPILE": "1"}, on_cpu=True)
    assert env["VLLM_USE_AOT_COMPILE"] == "1"  # the user's value wins
    _, env = serve_command(str(tiny_base_dir), config, [], {}, on_cpu=False)
    assert "VLLM_USE_AOT_COMPILE" not in env  # GPU builds keep vLLM's default


def test_startup_bench_reads_vllm_cache_messages_and_engine_init_time():
    failed = ("(Worker pid=1) WARNING [decorators.py:333] [backbone] Compiling model again due to a load failure "
              "from /tmp/x/model, reason: 'function' object has no attribute 'finalize_loading'\n"
              "(EngineCore pid=2) INFO [core.py:402] init engine (profile, create kv cache, warmup model) took 119.48 s\n")
    assert startup_bench.cache_state(failed) == "reload failed, compiled again"
    assert startup_bench.engine_init_seconds(failed) == 119.48
    assert startup_bench.cache_state("[backbone] Directly load AOT compilation from path /x") == "loaded"
    assert startup_bench.cache_state("") == "-" and startup_bench.engine_init_seconds("") is None
