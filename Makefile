# regvault — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
SAMVENV := .venv-sam
CHECKOVVENV := .venv-checkov
BIN := $(VENV)/bin
export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install system-deps lint format validate build test test-unit test-integration demo docs bench clean

help:
	@echo "make demo      the main job on the embedded default (S3 emulator + real registry + skopeo)"
	@echo "make test      lint, template checks and every test (installs what it needs)"
	@echo "make install   .venv (regvault + dev tools) and .venv-sam (aws-sam-cli)"
	@echo "make build     sam build (offline: no Docker, no python3.13 needed)"
	@echo "make bench     benchmarks vs garbage-collect --dry-run and s3-pit-restore -> bench/RESULTS.md"

$(VENV)/.installed: requirements/dev.txt requirements/constraints.txt pyproject.toml tools/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements/dev.txt -c requirements/constraints.txt
	$(BIN)/pip install --quiet --no-build-isolation --no-deps -e . -e tools
	touch $@

$(SAMVENV)/.installed: requirements/sam.txt requirements/sam-constraints.txt
	$(PYTHON) -m venv $(SAMVENV)
	$(SAMVENV)/bin/pip install --quiet -r requirements/sam.txt -c requirements/sam-constraints.txt
	touch $@

$(CHECKOVVENV)/.installed: requirements/checkov.txt requirements/checkov-constraints.txt
	$(PYTHON) -m venv $(CHECKOVVENV)
	$(CHECKOVVENV)/bin/pip install --quiet -r requirements/checkov.txt -c requirements/checkov-constraints.txt
	touch $@

install: $(VENV)/.installed $(SAMVENV)/.installed $(CHECKOVVENV)/.installed

# The real registry and the real client, from Debian.
system-deps:
	@if command -v docker-registry >/dev/null && command -v skopeo >/dev/null && command -v shellcheck >/dev/null && command -v chromium >/dev/null && command -v curl >/dev/null; then \
		true; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry skopeo shellcheck chromium curl; \
	else \
		echo "regvault's tests need Debian's registry, skopeo, shellcheck, chromium and curl; run:" >&2; \
		echo "  sudo apt-get update && sudo apt-get install -y docker-registry skopeo shellcheck chromium curl" >&2; \
		exit 1; \
	fi
	@# the launch on an emulated instance needs a Docker Engine (root only; without it those tests skip)
	@if [ "$$(id -u)" = 0 ] && ! { command -v dockerd >/dev/null && [ -x /usr/bin/docker ]; }; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io; \
	fi

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

validate: $(SAMVENV)/.installed $(CHECKOVVENV)/.installed
	$(SAMVENV)/bin/sam validate --lint
	$(SAMVENV)/bin/cfn-lint -t template.yaml -a cfn_lint_serverless.rules
	$(CHECKOVVENV)/bin/checkov --config-file .checkov.yaml -f template.yaml

build: $(SAMVENV)/.installed
	$(SAMVENV)/bin/sam build

test: install system-deps lint validate
	$(BIN)/pytest

test-unit: $(VENV)/.installed
	$(BIN)/pytest tests/unit -m "not slow"

test-integration: install system-deps
	$(BIN)/pytest tests/integration

docs: install system-deps
	REGVAULT_UPDATE_DOCS=1 $(BIN)/pytest tests/integration/test_demo.py

# Not part of `make test` (a smoke size of it is). BENCH_ARGS="--sizes 1000,10000" for a shorter run.
bench: $(VENV)/.installed system-deps
	$(BIN)/python -m harness.bench --out bench $(BENCH_ARGS)

demo: $(VENV)/.installed system-deps
	$(BIN)/python -m harness.demo

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
