# Two entry points for a fresh machine: `make run` and `make test`.
# Both create .venv (Python >= 3.11) and install the pinned package first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
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

$(BIN)/recastflow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[workflow,test]'
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
