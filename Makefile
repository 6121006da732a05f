# Stepstone: `make demo` shows the walkthrough, `make test` runs everything CI runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-latest lock lint unit system-deps venv clean bench profile softhsm

# Installs come from requirements.lock (exact versions, hashes): a fresh machine gets what was
# tested. `make lock` refreshes it from the ranges in pyproject.toml.
LOCK := requirements.lock

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests use (real openssl, SoftHSM2, PostgreSQL); installed only when missing.
system-deps:
	@missing=""; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v softhsm2-util >/dev/null || missing="$$missing softhsm2"; \
	command -v swig >/dev/null || missing="$$missing swig"; \
	[ -e /usr/include/PCSC/winscard.h ] || missing="$$missing libpcsclite-dev"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Three workers: the end-to-end tests spend much of their time waiting on servers and
# schedules; a file's tests stay on one worker so module fixtures start once.
unit: $(STAMP)
	$(BIN)/python -m pytest -q -n 3 --dist loadfile

# The venv build needs swig/libpcsclite-dev (pyscard, for yubikey-manager): deps come first.
$(STAMP): | system-deps

test: system-deps $(STAMP) lint unit

# The same suite against the newest versions pyproject's ranges allow, in a venv of its own:
# what the next `make lock` would bring in, found before it lands.
LATEST := .venv-latest
test-latest: system-deps
	@test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/pip install --quiet --disable-pip-version-check --upgrade pip setuptools
	$(LATEST)/bin/pip install --quiet --disable-pip-version-check --upgrade --upgrade-strategy eager -e '.[dev,postgres,yubikey]'
	$(LATEST)/bin/pip list --format=freeze --disable-pip-version-check > $(LATEST)/versions.txt
	$(MAKE) lint unit VENV=$(LATEST) STAMP=$(LATEST)/versions.txt

lock: $(STAMP)
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --extra dev --extra postgres --extra yubikey \
	  -o $(LOCK) pyproject.toml

# SoftHSM2 tokens in a private directory (never the system's) for development.
softhsm: system-deps
	./softhsm/setup-tokens.sh $(CURDIR)/.softhsm

demo: $(STAMP)
	@command -v openssl >/dev/null || $(MAKE) system-deps
	PATH="$(CURDIR)/$(BIN):$$PATH" ./scripts/demo.sh

# The signing load: req/s, latency, server CPU per certificate, worker RSS; file vs SoftHSM2,
# SQLite vs PostgreSQL, all in one run (ratios against the first scenario).
bench: system-deps $(STAMP)
	$(BIN)/python -m bench.load

# py-spy samples the workers under the bench's load; the report lands in profile/.
profile: system-deps $(STAMP)
	$(BIN)/python -m bench.profile

clean:
	rm -rf $(VENV) $(LATEST) build *.egg-info demo
