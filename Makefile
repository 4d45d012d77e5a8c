# MLOps Workbench: the two commands are `make run` and `make test`.
# Needs only Python 3.11+ and make; everything else goes into .venv.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8501
PYTEST_ARGS ?=
# TEST_JOBS=2 runs the suite as two pytest processes at once: the pipeline and unit tests, and the rest.
# Most tests wait on services, browsers and subprocesses, so even on two cores the suite takes about half
# the wall time. Each process's summary is printed; make fails if either fails.
TEST_JOBS ?= 1
TEST_GROUP := tests/pipelines tests/unit
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

# apt_install(name, present-test, packages, which tests skip without it): install Debian packages when
# missing and apt-get is usable (as root, or through passwordless sudo); otherwise warn and go on,
# since the tests that need them skip and say why.
define apt_install
	@if $(2); then \
		echo "$(1): present"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "WARNING: $(1) is missing and apt-get is not available; $(4) will skip." >&2; \
	else \
		if [ "$$(id -u)" = "0" ]; then SUDO=""; \
		elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
		else echo "WARNING: $(1) is missing and apt-get needs root (no passwordless sudo); $(4) will skip. Install it with: sudo apt-get install $(3)" >&2; exit 0; fi; \
		echo "$(1): installing Debian $(3) with $${SUDO:+sudo }apt-get"; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(3) || \
		echo "WARNING: apt-get could not install $(3); $(4) will skip." >&2; \
	fi
endef

# Debian chromium drives the real-browser tests.
chromium:
	$(call apt_install,chromium,[ -x "$(CHROMIUM)" ],chromium fonts-liberation,the real-browser tests)

# Spark (the [spark] extra, `workbench score --engine spark`) needs Java 17+.
java:
	$(call apt_install,java,command -v java >/dev/null 2>&1,default-jre-headless,the Spark engine's tests)

test: install-dev chromium java
ifeq ($(TEST_JOBS),2)
	@$(BIN)/python -m pytest $(PYTEST_ARGS) -o cache_dir=.pytest-cache-group $(TEST_GROUP) > .pytest-group.log 2>&1 & \
	group=$$!; \
	$(BIN)/python -m pytest $(PYTEST_ARGS) $(addprefix --ignore=,$(TEST_GROUP)); rest=$$?; \
	wait $$group; first=$$?; echo "== $(TEST_GROUP)"; cat .pytest-group.log; rm -f .pytest-group.log; \
	echo "== pytest exit codes: $(TEST_GROUP) $$first, the rest $$rest"; \
	[ $$first -eq 0 ] && [ $$rest -eq 0 ]
else
	$(BIN)/python -m pytest $(PYTEST_ARGS)
endif

bench: install-dev chromium java
	@set -e; for script in benchmarks/[!_]*.py; do \
		echo "== $$script"; \
		$(BIN)/python $$script; \
	done

lint: install-dev
	$(BIN)/ruff check workbench pipelines app_pages tests benchmarks docs streamlit_app.py
	$(BIN)/mypy workbench pipelines

clean:
	rm -rf build *.egg-info .pytest_cache .mypy_cache .ruff_cache tests/e2e/artifacts
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
