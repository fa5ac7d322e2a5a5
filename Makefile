# The README's whole set-up: `make demo` runs the demo, `make test` runs the tests.
# Both create (or reuse) .venv, install wirelab into it and install the system
# packages the job needs (when apt-get is present and we are root).

VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.wirelab-installed

.PHONY: demo test lint sysdeps venv clean fuzz soak

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,docker]'
	@touch $@

sysdeps:
	@bash scripts/install-system-deps.sh

lint: venv
	$(VENV)/bin/ruff check toolchain tests bench

test: venv sysdeps lint
	$(PY) -m pytest

demo: venv sysdeps
	$(VENV)/bin/wirelab demo

clean:
	rm -rf $(VENV) dist examples/*/build filters/*/build

# Every libFuzzer target (tests/fuzz/) for FUZZ_SECONDS each (or until
# FUZZ_RUNS executions, when set: `make fuzz FUZZ_SECONDS=4200 FUZZ_RUNS=10000000`), ASan + UBSan;
# FUZZ_WORKERS=2 runs each target on two cores (libFuzzer's fork mode);
# crash inputs land in build/fuzz/<target>/ (commit them under
# tests/fuzz/regressions/<target>/ with the fix).
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?= 0
FUZZ_WORKERS ?= 1
fuzz: venv sysdeps
	$(PY) tests/fuzz/fuzzing.py --seconds $(FUZZ_SECONDS) --runs $(FUZZ_RUNS) --workers $(FUZZ_WORKERS)

# Bulk transfers (>= 1 GiB PostgreSQL COPY each way, >= 64 MiB MySQL) and
# 100,000-connection churn per filter through real Envoy; prints figures
# (bench/soak.py --help for smaller runs).
soak: venv sysdeps
	$(PY) bench/soak.py
