# The two commands: `make demo` and `make test`. Both create .venv and install into it
# when needed, so a fresh machine with Python 3 and make is enough.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
CHROMIUM := $(VENV)/.chromium
JAVA := $(VENV)/.java
PYTEST_WORKERS ?= auto
# How many use-case projects are tested at once: one per usable CPU.
JOBS ?= $(shell getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
# Each is its own pytest run from its folder: they all have a `python` package of their own.
USE_CASES := $(patsubst %/,%,$(sort $(wildcard examples/use_cases/*/)))
# Each project's output in one piece (GNU make 4+; macOS's make 3.81 interleaves it).
OUTPUT_SYNC := $(if $(filter output-sync,$(.FEATURES)),--output-sync=target)
# The Pythons besides the venv's that `make smoke` installs the wheel on, when found here.
SMOKE_PYTHONS ?= 3.12 3.13

.PHONY: demo test use-cases $(USE_CASES) smoke benchmark clean

demo: $(INSTALLED)
	$(BIN)/mixmesh demo

# The architecture's contracts (docs/architecture.md), the documentation site (any broken link,
# anchor or API name fails it), the package's suite (tests sharing an expensive set-up, the Spark
# cluster's among them, are grouped on one worker with xdist_group, so it is made once), then the
# example project's own tests, run from the project as a user runs theirs (its `python` package
# must not meet the test projects' ones), then the use-case projects, JOBS at a time, each one's
# output in one piece.
test: $(INSTALLED) $(CHROMIUM) $(JAVA)
	$(BIN)/lint-imports
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=30
	cd examples/customer_analytics && ../../$(BIN)/pytest -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile tests
	$(MAKE) --no-print-directory -j $(JOBS) $(OUTPUT_SYNC) use-cases

use-cases: $(USE_CASES)

$(USE_CASES): $(INSTALLED)
	cd $@ && $(abspath $(BIN))/pytest -p no:cacheprovider

# A wheel of this checkout installed fresh (dependencies from the package index) on each Python
# of SMOKE_PYTHONS found on the machine (.ci/find-python: PATH, pyenv, uv; nothing is
# downloaded): `mixmesh init` with `sqlmesh plan`, `sqlmesh test`, pytest and `sqlmesh ui`, then
# `mixmesh demo` and the example project's tests (tests/test_demo_wheel.py). Prints which ran.
smoke: $(INSTALLED)
	@ran=""; missing=""; \
	for version in $(SMOKE_PYTHONS); do \
		python=$$(.ci/find-python $$version); \
		if [ -z "$$python" ]; then echo "Python $$version: not on this machine, skipped"; missing="$$missing $$version"; continue; fi; \
		echo "Python $$version: $$python"; \
		MIXMESH_WHEEL_PYTHON=$$python $(BIN)/pytest -p no:cacheprovider -n 0 tests/test_demo_wheel.py || exit 1; \
		ran="$$ran $$version"; \
	done; \
	echo "Smoke test of the wheel ran on Python:$${ran:- none}; not on this machine:$${missing:- none}"

# Every benchmark at its full size (about 30 minutes on 2 idle cores; the seed's risk score
# and external_calls' one-call-at-a-time variants take minutes each), then the one report of
# the ratios (benchmarks/results/report.md) and how it compares with the committed one.
benchmark: $(INSTALLED) $(JAVA)
	$(BIN)/python benchmarks/udf_throughput.py
	$(BIN)/python benchmarks/monitor_overhead.py
	$(BIN)/python benchmarks/timeout_overhead.py
	$(BIN)/python benchmarks/python_model_io.py
	$(BIN)/python benchmarks/risk_scoring.py
	$(BIN)/python benchmarks/ordered_lists.py
	$(BIN)/python benchmarks/ltv_features.py
	$(BIN)/python benchmarks/spark_udf.py
	$(BIN)/python benchmarks/spark_streaming_reads.py
	$(BIN)/python benchmarks/nested_conversion.py
	$(BIN)/python benchmarks/external_calls.py
	$(BIN)/python benchmarks/report.py
	$(BIN)/python benchmarks/compare.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever the declared dependencies change.
# The example's lock file pins the packages its results depend on (mixmesh warns when the
# installed ones differ): the tests and the demo run with exactly those.
$(INSTALLED): pyproject.toml examples/customer_analytics/sqlmesh-requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]" -c examples/customer_analytics/sqlmesh-requirements.lock
	touch $@

# Headless Chromium for the report's browser test. A chromium on PATH is used as it is;
# else Playwright's own build, whose download needs Playwright's CDN; where that is out of
# reach, Debian's chromium package (needs root and apt).
$(CHROMIUM): $(INSTALLED)
	command -v chromium >/dev/null || $(BIN)/python -m playwright install chromium || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }
	touch $@

# Java for the Spark tests (Spark 4 runs on Java 17 or 21): the one on PATH, else Debian's
# headless JRE (needs root and apt).
$(JAVA): $(INSTALLED)
	command -v java >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless; }
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache examples/customer_analytics/demo.duckdb* examples/customer_analytics/artifacts
