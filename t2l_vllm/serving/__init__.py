"""Serving generated adapters through vLLM's OpenAI server.

    plugin_names.py  the two vLLM plugin entry-point names (setup.py reads them from here)
    config.py        ServeConfig: every serving setting with its default, env variable and flag help
    launch.py        the `python -m vllm.entrypoints.openai.api_server` command line and environment
    service.py       engine-agnostic adapter cache: single flight, reference counts, bounds
    store.py         adapter folders on disk: the durable tier and the tmpfs tier
    shared_store.py  a folder several servers share: adapters generated once, adopted by all
    http.py          API-key middleware, OpenAI error JSON, generation routes (no vLLM import)
    metrics.py       Prometheus metrics (no description text in labels)
    vllm_plugin.py   everything that touches vLLM's API server: middleware, admin routes, resolver
    process.py       `t2l-vllm serve` as a child process on loopback (tests, benchmarks, cluster replicas)
    guard.py         runs the server so that it dies with its parent (cluster replicas)
"""
