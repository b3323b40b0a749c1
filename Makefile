# The two commands of the README. Each sets everything up itself.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test

install:
	bash scripts/install.sh

# Main job on the embedded defaults: the OpenAI-compatible server on port 8000.
run: install
	$(VENV)/bin/t2l-vllm serve

# The suite needs the ray extra too: tests/test_cluster.py runs a local Ray Serve cluster.
test:
	T2L_EXTRA=$(or $(T2L_EXTRA),cpu),ray bash scripts/install.sh
	bash scripts/test.sh
