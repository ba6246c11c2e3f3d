# evtools developer tasks.  `make` (or `make help`) lists the targets.

PYTHON3     ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
PYTEST_ARGS ?=

# The broker tests again, on the oldest dependency versions pyproject.toml admits
# (tests/oldest-versions.txt): the read-ahead transports' probe and fallback on an old stack.
# Tests that need Celery or evtools' read-ahead Redis transport (kombu>=5.7) are not collected.
OLDEST_VENV  := .venv-oldest
OLDEST_PY    := $(OLDEST_VENV)/bin/python
OLDEST_TESTS := tests/transport/test_amqp.py tests/transport/test_redis.py tests/transport/test_fallback.py \
                tests/transport/test_fsbroker.py tests/test_receiver.py tests/test_imports.py \
                tests/integration/test_pushdown.py
OLDEST_ARGS  ?= -m "not celery and not fast_redis"

# The benchmark's own venv: evtools (editable) next to the Celery it is compared with.
BENCH_VENV  := .bench-venv
BENCH_PY    := $(BENCH_VENV)/bin/python
BENCH_QUICK ?=

# Where `make install` puts the man pages and completions; DESTDIR stages a package.
PREFIX      ?= /usr/local
DESTDIR     ?=
MAN1DIR      = $(DESTDIR)$(PREFIX)/share/man/man1
BASHCOMPDIR  = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR   = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHCOMPDIR  = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d

# Packages the tests need from the system: real brokers, Prometheus (exporter tests), tmux (evtop
# tests), man (man page) and openssl (certificates for the TLS Redis and RabbitMQ; redis-server
# also runs the Sentinel).
APT_PACKAGES := redis-server rabbitmq-server prometheus tmux man-db zsh fish openssl
RABBITMQ_SERVER := /usr/lib/rabbitmq/bin/rabbitmq-server
# Use sudo only when not root and sudo exists.
SUDO := $(shell if [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then echo sudo; fi)

.DEFAULT_GOAL := help
.PHONY: help venv venv-oldest system-deps lint test fuzz bench man completions install clean demo soak

help: ## list the targets
	@echo "Targets:"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-zA-Z_-]+):.*## (.*)/  \1\t\2/' | expand -t 16

venv: $(VENV)/.installed ## create .venv and install evtools[test,redis,lint] (editable) into it

$(VENV)/.installed: pyproject.toml
	$(PYTHON3) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,redis,prometheus,lint]'
	touch $@

venv-oldest: $(OLDEST_VENV)/.installed ## create .venv-oldest: evtools[redis] on the oldest versions it admits

$(OLDEST_VENV)/.installed: pyproject.toml tests/oldest-versions.txt Makefile
	$(PYTHON3) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/pip install -q --upgrade pip
	$(OLDEST_VENV)/bin/pip install -q -c tests/oldest-versions.txt -e '.[redis]' pytest pytest-timeout hypothesis
	touch $@

# Installs what is missing with apt-get.  Nothing here should start a system Redis or RabbitMQ
# (policy-rc.d usually prevents it); if the install started one anyway, it is stopped again.
# Tests never use the default ports, so a system broker that keeps running does no harm.
system-deps: ## install redis-server, rabbitmq-server, prometheus, tmux, man and openssl with apt-get if missing
	@if command -v redis-server >/dev/null 2>&1 && [ -x $(RABBITMQ_SERVER) ] \
	    && command -v prometheus >/dev/null 2>&1 \
	    && command -v tmux >/dev/null 2>&1 && command -v man >/dev/null 2>&1 \
	    && command -v zsh >/dev/null 2>&1 && command -v fish >/dev/null 2>&1 \
	    && command -v openssl >/dev/null 2>&1; then \
	    echo "system-deps: redis-server, rabbitmq-server, prometheus, tmux, man, zsh, fish and openssl are installed"; \
	else \
	    set -e; \
	    new=""; \
	    for pkg in redis-server rabbitmq-server prometheus prometheus-node-exporter; do \
	        dpkg -s $$pkg >/dev/null 2>&1 || new="$$new $$pkg"; \
	    done; \
	    $(SUDO) apt-get update; \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $(APT_PACKAGES); \
	    for svc in $$new; do \
	        if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet $$svc 2>/dev/null; then \
	            $(SUDO) systemctl stop $$svc || true; \
	        elif [ -x /etc/init.d/$$svc ] && command -v service >/dev/null 2>&1; then \
	            $(SUDO) service $$svc stop >/dev/null 2>&1 || true; \
	        fi; \
	    done; \
	fi

# The README's first command: a simulated cluster on the embedded broker (filesystem://),
# watched live: the monitor on a terminal, the dump otherwise. No server, no Celery.
demo: venv ## watch a simulated Celery cluster on the embedded broker (no server needed)
	@$(PY) -m evtools demo & demo=$$!; \
	trap 'kill $$demo 2>/dev/null; wait $$demo 2>/dev/null' EXIT INT TERM; \
	if [ -t 0 ] && [ -t 1 ]; then \
	    $(PY) -m evtools events -b filesystem://; \
	else \
	    $(PY) -m evtools events -b filesystem:// --dump; \
	fi

# The public modules, those that mirror celery.events, are type-checked.
MYPY_MODULES := evtools/__init__.py evtools/states.py evtools/event.py evtools/state.py \
                evtools/receiver.py evtools/dispatcher.py evtools/snapshot.py

lint: venv ## ruff, the import layers (lint-imports) and mypy on the public modules
	$(VENV)/bin/ruff check evtools tests bench tools
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy $(MYPY_MODULES)

# One set of servers for both legs: the suite on today's versions, then the broker tests on
# the oldest ones (a couple of minutes).
test: system-deps venv venv-oldest lint ## lint, then the tests against private Redis, RabbitMQ, TLS, Sentinel and Prometheus servers (PYTEST_ARGS=...), then the broker tests on the oldest versions (OLDEST_ARGS=...)
	$(PY) -m tests.servers run -- sh -c '$(PY) -m pytest $(PYTEST_ARGS) \
	    && echo "== the broker tests on the oldest supported versions ($(OLDEST_VENV)) ==" \
	    && $(OLDEST_PY) -m pytest $(OLDEST_ARGS) $(OLDEST_TESTS)'

# The differential test of the State against Celery's with random (not the fixed) examples.
FUZZ_EXAMPLES ?= 2000
fuzz: venv ## the State against Celery's on FUZZ_EXAMPLES random event sequences (make test runs a fixed 100)
	EVTOOLS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider tests/state/test_differential.py

$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON3) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q -e '.[redis,prometheus,speedups]' celery==5.7.0 redis
	touch $@

# Starts its own Redis and RabbitMQ (tests/servers.py) and stops them whatever happens.
# About 15 minutes on 2 cores; BENCH_QUICK=1 is a smoke run of a few minutes (RESULTS-quick.md).
bench: system-deps $(BENCH_VENV)/.installed ## evtools vs Celery 5.7.0 on the same stream, and type filters pushed down: bench/RESULTS.md, exporter: bench/EXPORTER.md (BENCH_QUICK=1: smoke run)
	BENCH_QUICK=$(BENCH_QUICK) $(BENCH_PY) -m bench.run
	BENCH_QUICK=$(BENCH_QUICK) $(BENCH_PY) -m bench.exporter

# Pages of removed subcommands must not linger, hence the rm.
man: venv ## regenerate the man pages in man/ from the click definitions
	rm -f man/*.1
	$(PY) -m tools.manpages man

completions: venv ## regenerate the bash, zsh and fish completion scripts in completions/
	$(PY) -m tools.completions completions

# Installs the checked-in files only: no venv, no Python needed.
install: ## install the man pages and shell completions under $PREFIX (/usr/local; DESTDIR=...)
	install -d '$(MAN1DIR)' '$(BASHCOMPDIR)' '$(ZSHCOMPDIR)' '$(FISHCOMPDIR)'
	install -m 644 man/*.1 '$(MAN1DIR)/'
	install -m 644 completions/evtools.bash '$(BASHCOMPDIR)/evtools'
	install -m 644 completions/_evtools '$(ZSHCOMPDIR)/_evtools'
	install -m 644 completions/evtools.fish '$(FISHCOMPDIR)/evtools.fish'

# Ten minutes at 10,000 events/s into the monitor and a camera, RSS sampled: bench/SOAK.md.
soak: system-deps venv ## soak run: 10k events/s for 10 minutes into the monitor and a camera
	$(PY) -m bench.soak --seconds $${SOAK_SECONDS:-600} --rate $${SOAK_RATE:-10000}

clean: ## remove .venv, build output and caches
	rm -rf $(VENV) $(OLDEST_VENV) build dist *.egg-info .pytest_cache .hypothesis .servers
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
