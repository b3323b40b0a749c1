# The two commands of the README. Each sets everything up itself.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test

install:
	bash scripts/install.sh

# Main job on the embedded defaults.
run: install
	$(VENV)/bin/t2l-vllm generate "Classify the sentiment of a tweet as positive or negative."

test: install
	bash scripts/test.sh
