# Stepstone: `make demo` shows the walkthrough, `make test` runs everything CI runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-latest lock lint unit system-deps venv clean bench bench-inventory profile softhsm deb deb-lint

# Installs come from requirements.lock (exact versions, hashes): a fresh machine gets what was
# tested. `make lock` refreshes it from the ranges in pyproject.toml.
LOCK := requirements.lock
# The Debian package's venv: the runtime, postgres and yubikey extras only, at the versions of
# $(LOCK) (its constraint), so the package runs what the tests ran.
SERVER_LOCK := requirements-server.lock

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests use (real openssl, SoftHSM2, PostgreSQL; dpkg-dev, binutils, lintian
# and Debian's python3-venv for `make deb`); installed only when missing.
system-deps:
	@missing=""; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v softhsm2-util >/dev/null || missing="$$missing softhsm2"; \
	command -v swig >/dev/null || missing="$$missing swig"; \
	[ -e /usr/include/PCSC/winscard.h ] || missing="$$missing libpcsclite-dev"; \
	command -v dpkg-shlibdeps >/dev/null || missing="$$missing dpkg-dev"; \
	command -v strip >/dev/null || missing="$$missing binutils"; \
	command -v lintian >/dev/null || missing="$$missing lintian"; \
	/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/sbin/pcscd ] && [ -e /usr/lib/pcsc/drivers/serial/libifdvpcd.so ] || missing="$$missing pcscd vsmartcard-vpcd"; \
	[ -x /usr/sbin/sshd ] && command -v ssh-agent >/dev/null || missing="$$missing openssh-server openssh-client"; \
	command -v certbot >/dev/null || missing="$$missing certbot"; \
	command -v lego >/dev/null || missing="$$missing lego"; \
	command -v caddy >/dev/null || missing="$$missing caddy"; \
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
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --extra postgres --extra yubikey \
	  --constraint $(LOCK) -o $(SERVER_LOCK) pyproject.toml

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

# One filtered page of `step-ca certificates list` from a 1,000,000-row SQLite table.
bench-inventory: $(STAMP)
	$(BIN)/python -m bench.inventory

# py-spy samples the workers under the bench's load; the report lands in profile/.
profile: system-deps $(STAMP)
	$(BIN)/python -m bench.profile

# The Debian package, dist/stepstone_<version>_<arch>.deb (packaging/README.md): dpkg-deb over
# a venv at /opt/stepstone made by Debian's /usr/bin/python3 from $(SERVER_LOCK) by hash.
deb: system-deps $(STAMP) $(SERVER_LOCK)
	PIP=$(CURDIR)/$(BIN)/pip SERVER_LOCK=$(CURDIR)/$(SERVER_LOCK) ./packaging/build-deb.sh dist

# lintian's errors fail; the venv under /opt is the one deliberate exception (overridden).
deb-lint: deb
	lintian --fail-on error dist/stepstone_*.deb

clean:
	rm -rf $(VENV) $(LATEST) build dist *.egg-info demo
