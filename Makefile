# The front door: `make help` lists the targets. Every target installs what it needs itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA_JARS := .cache/kafka-jars
KAFKA_STAMP := $(KAFKA_JARS)/.resolved
TOOLS := .cache/tools
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its dev tools

# Apache Kafka's jars from Maven Central (deploy/kafka/pom.xml), for the embedded broker of tests and `make run`.
$(KAFKA_STAMP): deploy/kafka/pom.xml
	rm -rf $(KAFKA_JARS)
	cd deploy/kafka && mvn -B -q -Dstyle.color=never dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(KAFKA_JARS) -DincludeScope=runtime
	touch $(KAFKA_STAMP)

kafka-jars: $(KAFKA_STAMP) ## Resolve the embedded Kafka broker's jars into .cache/ (needs Java 17 and Maven)

# Each deploy/tools/*.sh installs one check tool (idempotent; Debian packages need root, as on CI).
tools: install ## Install the check tools the tests use (Prometheus/promtool, kubeconform, ...) into the machine or .cache/tools
	@mkdir -p $(TOOLS)
	@for script in deploy/tools/*.sh; do bash $$script $(CURDIR)/$(TOOLS) || exit 1; done

fmt: install ## Format and autofix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: install ## ruff, ruff format --check, mypy --strict, import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

schemas: install ## Regenerate the derived-event JSON Schema files in schemas/json/
	$(BIN)/python -m schemas.export

test-unit: install ## Unit and property tests of the pure core (no network)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: install kafka-jars ## Integration tests against a real embedded Kafka broker
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test-e2e: install kafka-jars ## End-to-end: real ingest and processor subprocesses, simulated traffic, live == replay
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

test-faults: install kafka-jars ## Fault injection on real processes: broker SIGKILL/SIGSTOP, worker SIGKILLs, a forged-signature flood
	$(BIN)/pytest tests/faults $(PYTEST_ARGS)

test: install kafka-jars tools ## Install everything and run lint plus the whole test suite
	$(MAKE) lint
	$(BIN)/pytest $(PYTEST_ARGS)

replay: install ## Replay a raw log: make replay FILE=bodies.jsonl [ARGS=--summary]
	$(BIN)/python -m processor replay $(FILE) $(ARGS)

bench: install kafka-jars ## Every benchmark, side by side with its baseline: bench/results.json, .md, .png
	$(BIN)/python -m bench $(ARGS)

run: install kafka-jars ## Run Kafka (embedded unless KAFKA_BOOTSTRAP is set), the processor on :6066 and the ingest on :8080
	$(BIN)/python -m devenv.run

demo: install ## With `make run` up in another terminal: send noisy recordings, wait, check live state == replay
	$(BIN)/python -m devenv.demo

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

.PHONY: help install kafka-jars tools fmt lint schemas test-unit test-integration test-e2e test-faults test replay bench run demo clean
