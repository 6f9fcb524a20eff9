# Two entry points for a fresh machine: `make run` and `make test`.
# Both create .venv (Python >= 3.11) and install the package first, every distribution at the version of
# requirements.lock (pip constraints; pyproject.toml itself states compatible ranges).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
PIP_INSTALL := $(BIN)/pip install --quiet --disable-pip-version-check -c $(LOCK)
CORES ?= all
CONFIG ?=      # another run configuration, e.g. make run CONFIG=config/validation.yaml
# Snakemake only finds a profiles/default next to the Snakefile by itself; ours lives under workflow/
SNAKEMAKE := $(BIN)/snakemake --workflow-profile workflow/profiles/default
export OMP_NUM_THREADS := 1
# Published likelihoods and patches are fetched into the cache (RECASTFLOW_CACHE, default ~/.cache/recastflow),
# from the mirror folders of RECASTFLOW_MIRROR first, then from their origin (HEPData, ...). A machine with an
# offline mirror next to the checkout (../shared/data) uses it unless RECASTFLOW_MIRROR says otherwise.
ifeq ($(origin RECASTFLOW_MIRROR),undefined)
ifneq ($(wildcard ../shared/data/.),)
RECASTFLOW_MIRROR := $(abspath ../shared/data)
endif
endif
ifdef RECASTFLOW_MIRROR
export RECASTFLOW_MIRROR
endif

.PHONY: setup run test lint docs clean images run-containers report archive fetch

# pip and setuptools from the lock first, then the package built with that setuptools (no build isolation)
$(BIN)/recastflow: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) pip setuptools
	$(PIP_INSTALL) --no-build-isolation -e '.[workflow,test]'
	touch $@

setup: $(BIN)/recastflow

run: setup
	PATH="$(abspath $(BIN)):$$PATH" $(SNAKEMAKE) --cores $(CORES) $(if $(strip $(CONFIG)),--configfile $(CONFIG))

# one pytest worker per core (at most 4), whole test files per worker so module fixtures are built
# once; --durations prints the slowest tests, to keep the suite in budget
test: setup
	$(BIN)/python -m pytest -ra --durations=20 -n auto --maxprocesses 4 --dist loadfile

# the published files of every bundle, into the cache (a run fetches what it needs by itself)
fetch: setup
	$(BIN)/recastflow fetch

# the workflow's rules, then the package: lint, format and types (settings in pyproject.toml)
lint: setup
	PATH="$(abspath $(BIN)):$$PATH" $(SNAKEMAKE) --lint
	$(BIN)/ruff check workflow/recastflow
	$(BIN)/ruff format --check workflow/recastflow
	$(BIN)/mypy

# the documentation site into site/ (warnings are errors; references regenerated from schemas, parser, code)
docs: setup
	$(BIN)/mkdocs build --strict

clean:
	rm -rf results logs archive benchmarks/results .snakemake site

images:
	bash containers/install-podman.sh
	bash containers/build.sh

# the default run with every job in its locked image (podman behind tests/container/apptainer)
run-containers: setup images
	PATH="$(abspath tests/container):$(abspath $(BIN)):$$PATH" $(SNAKEMAKE) --cores $(CORES) --sdm apptainer

report: setup
	PATH="$(abspath $(BIN)):$$PATH" $(SNAKEMAKE) --report results/snakemake-report.html

archive: setup
	PATH="$(abspath $(BIN)):$$PATH" $(SNAKEMAKE) --cores $(CORES) archive
