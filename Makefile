# The README names these targets; .ci/run calls `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-slow lint bytecode bench bench-apply bench-hostile bench-media bench-many peers clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: install
	$(BIN)/intercom-sip serve

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# The SIP peers (Kamailio, coturn, SIPp, baresip) come from Debian's packages.
peers:
	scripts/install-peers

# Side by side: the tests mostly wait on peers and timers, and none shares a port (each
# takes a free one from the kernel). The slow tests (real-time timers, full example
# counts) are deselected here and run by test-slow.
TEST_WORKERS ?= 4

# The suite starts the service about 240 times. Where PYTHONDONTWRITEBYTECODE is set (as
# on the CI machines), each start would compile every module again: a third of its CPU.
# Compiled once here, the bytecode is read even so.
bytecode: install
	$(BIN)/python -m compileall -q src tests

test: lint peers bytecode
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

test-slow: install peers bytecode
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal --slow -m "slow or property"

# The bare app under uvicorn + httptools + uvloop runs from a venv of its own: a yardstick,
# never a dependency of the service.
BENCH_VENV := .venv-bench

$(BENCH_VENV)/.installed-stamp:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet uvicorn httptools uvloop
	touch $@

bench: install $(BENCH_VENV)/.installed-stamp
	$(BIN)/python bench/api.py --uvicorn $(BENCH_VENV)/bin/python

# As root, with Debian's tshark: it captures loopback.
bench-apply: install peers
	$(BIN)/python bench/apply.py

# As root (it captures loopback), with Debian's wrk: a real call's RTP send times and CPU,
# the monitor's beside baresip's, idle and under 50 HTTP clients (about 3 minutes).
bench-media: install peers
	$(BIN)/python bench/media.py

# Issue 6's hostile findings against a served instance (Linux: /proc, prlimit).
# The HTTP findings again on the standard loop (the service runs uvloop unless told).
# A building in one process: 100, 500 and 1,000 devices at one Kamailio (issue 14).
bench-many: install peers
	$(BIN)/python bench/many.py

bench-hostile: install
	$(BIN)/python bench/hostile.py
	INTERCOM_SIP_LOOP=asyncio $(BIN)/python bench/hostile.py --only 1 2 3 4 5

clean:
	rm -rf $(VENV) $(BENCH_VENV) data .pytest_cache .mypy_cache .ruff_cache
