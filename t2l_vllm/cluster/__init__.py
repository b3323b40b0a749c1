"""Scale-out on Ray Serve: one front door, N `t2l-vllm serve` replicas, one shared adapter store.

    config.py     ClusterConfig: every setting, the CLI's flags and the application's args
    app.py        the Ray Serve application (`build_app`, `app_builder` for serve run / RayService)
    frontdoor.py  the OpenAI-compatible ingress: adapter ids, retries, cluster-wide routes
    routing.py    the adapter id of a request (Ray's multiplexed model id) and routing counters
    replica.py    a replica: `t2l-vllm serve` on loopback, its private folder, its probe
    promtext.py   every replica's /metrics as one exposition with a replica label
    cli.py        `t2l-vllm serve-cluster`

Needs the `ray` extra (`T2L_EXTRA=cpu,ray bash scripts/install.sh`). The shared
adapter store itself is `serving/shared_store.py`: plain servers can share one too.
"""
