# Stepstone: `make demo` shows the walkthrough, `make test` runs everything CI runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := openssl softhsm2 postgresql

.PHONY: demo test lint unit system-deps venv clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	@touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests use (real openssl, SoftHSM2, PostgreSQL); installed only when missing.
system-deps:
	@missing=""; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v softhsm2-util >/dev/null || missing="$$missing softhsm2"; \
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

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: system-deps $(STAMP) lint unit

demo: $(STAMP)
	@command -v openssl >/dev/null || $(MAKE) system-deps
	PATH="$(CURDIR)/$(BIN):$$PATH" ./scripts/demo.sh

clean:
	rm -rf $(VENV) build *.egg-info demo
