# MLOps Workbench: the two commands are `make run` and `make test`.
# Needs only Python 3.11+ and make; everything else goes into .venv.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8501
PYTEST_ARGS ?=
CHROMIUM ?= /usr/bin/chromium

# Telemetry off for every tool the targets start.
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true

.PHONY: run test bench lint clean install install-dev chromium java

# The venv is created once; `pip install -e .` is re-run (quietly) so new dependencies land.
$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps re-run the install only when pyproject.toml changed (an editable install sees code changes).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/workbench demo seed
	$(BIN)/python -m streamlit run streamlit_app.py --server.address $(HOST) --server.port $(PORT)

# Debian chromium drives the real-browser tests. Install it when missing and apt-get is usable
# (as root, or through sudo); otherwise warn: the e2e tests then skip and say why.
chromium:
	@if [ -x "$(CHROMIUM)" ]; then \
		echo "chromium: $(CHROMIUM) present"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "WARNING: $(CHROMIUM) is missing and apt-get is not available; the real-browser tests will skip." >&2; \
	elif [ "$$(id -u)" = "0" ]; then \
		echo "chromium: installing Debian chromium with apt-get"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation || \
		echo "WARNING: apt-get could not install chromium; the real-browser tests will skip." >&2; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		echo "chromium: installing Debian chromium with sudo apt-get"; \
		sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation || \
		echo "WARNING: apt-get could not install chromium; the real-browser tests will skip." >&2; \
	else \
		echo "WARNING: $(CHROMIUM) is missing and apt-get needs root (no passwordless sudo); the real-browser tests will skip. Install it with: sudo apt-get install chromium" >&2; \
	fi

# Spark (the [spark] extra, `workbench score --engine spark`) needs Java 17+. Install Debian's
# default JRE when `java` is missing and apt-get is usable; otherwise warn: the Spark tests then skip.
java:
	@if command -v java >/dev/null 2>&1; then \
		echo "java: $$(command -v java) present"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "WARNING: java is missing and apt-get is not available; the Spark engine's tests will skip." >&2; \
	elif [ "$$(id -u)" = "0" ]; then \
		echo "java: installing Debian default-jre-headless with apt-get"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends default-jre-headless || \
		echo "WARNING: apt-get could not install default-jre-headless; the Spark engine's tests will skip." >&2; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		echo "java: installing Debian default-jre-headless with sudo apt-get"; \
		sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends default-jre-headless || \
		echo "WARNING: apt-get could not install default-jre-headless; the Spark engine's tests will skip." >&2; \
	else \
		echo "WARNING: java is missing and apt-get needs root (no passwordless sudo); the Spark engine's tests will skip. Install it with: sudo apt-get install default-jre-headless" >&2; \
	fi

test: install-dev chromium java
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-dev chromium java
	@set -e; for script in benchmarks/*.py; do \
		echo "== $$script"; \
		$(BIN)/python $$script; \
	done

lint: install-dev
	$(BIN)/ruff check workbench pipelines app_pages tests benchmarks docs streamlit_app.py
	$(BIN)/mypy workbench pipelines

clean:
	rm -rf build *.egg-info .pytest_cache .mypy_cache .ruff_cache tests/e2e/artifacts
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
