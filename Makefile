# tcpwatch developer targets. `make run` and `make test` work on a fresh
# Debian machine: they install what is missing (Debian packages need root or
# sudo) and keep Python packages in .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAMPLE := captures/mixed.pcap
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get

.PHONY: run test test-slow lint bench bench-deps compile venv system-deps clean

venv: $(BIN)/tcpwatch

$(BIN)/tcpwatch: pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || \
		($(APT) update -q && $(APT) install -y -q python3-venv python3-pip)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

run: venv
	$(BIN)/tcpwatch read $(SAMPLE)
	$(BIN)/tcpwatch timeline captures/clean-exchange.pcap

# Debian packages the test suite uses, as command:package pairs: real
# captures (tcpdump), the tshark backend (tshark), terminal checks (tmux),
# network namespaces (iproute2), packet loss in them (nftables), reading the
# Zeek log with zeek-cut's predecessor bro-cut (bro-aux).
system-deps:
	@missing=""; \
	for pair in tcpdump:tcpdump tshark:tshark tmux:tmux ip:iproute2 nft:nftables \
		bro-cut:bro-aux; do \
		command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(APT) update -q && $(APT) install -y -q $$missing; \
	fi

test: system-deps venv
	$(BIN)/pytest -q

test-slow: system-deps venv
	$(BIN)/pytest -q -m slow

lint: venv
	$(BIN)/ruff check tcpwatch tests
	$(BIN)/ruff format --check tcpwatch tests
	$(BIN)/mypy

# The benchmark compares with tcptrace and records its corpus in a network
# namespace whose loopback offloads ethtool turns off; gcc builds the
# mypyc-compiled copy it also times.
bench-deps:
	@missing=""; \
	for pair in tcptrace:tcptrace ethtool:ethtool gcc:gcc; do \
		command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(APT) update -q && $(APT) install -y -q $$missing; \
	fi

# BENCH_ARGS passes options and files to the runner, e.g. BENCH_ARGS="--runs 3".
bench: system-deps bench-deps venv
	@$(BIN)/python -c 'import setuptools' 2>/dev/null || $(BIN)/pip install -q setuptools
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Optional: compile the hot modules with mypyc, in place (needs gcc and the
# Python headers): about twice as fast on large captures. `make clean` or
# `python tools/compile.py --clean` goes back to pure Python. Not part of
# `make venv`, because a compiled module does not follow later edits of its
# source; rebuild after changing one (benchmarks/README.md says more).
compile: venv
	@$(BIN)/python -c 'import setuptools' 2>/dev/null || $(BIN)/pip install -q setuptools
	$(BIN)/python tools/compile.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	find tcpwatch -name '*.so' -delete
	rm -f *__mypyc*.so
