# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= all
CONFIG ?= config/config.yaml
SNAKEMAKE := PATH=$(CURDIR)/$(BIN):$$PATH snakemake

.PHONY: run report test setup lint style bench clean estimate

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

## make setup: the virtual environment alone (.venv, pinned packages, repaudit in editable mode)
setup: $(STAMP)

## make run: set-up, the embedded default workflow, the report, the claims table
# --scheduler greedy: the default ILP scheduler solves a CBC program at every scheduling round,
# which cost the snakemake process 10 CPU-minutes per hour of the 391-job default run
run: $(STAMP)
	$(SNAKEMAKE) --workflow-profile workflow/profiles/default --scheduler greedy \
		--cores $(CORES) --configfile $(CONFIG)
	$(SNAKEMAKE) --cores 1 --configfile $(CONFIG) --report results/report.html
	cut -f1,4-9,11-13 results/stats/claims.tsv | column -t -s "$$(printf '\t')"

## make estimate: jobs, GPU/CPU-hours and peak memory per rule of $(CONFIG), flagged where over
## its configured resources (tools/estimate.py: dry run, FLOPs counted, a few models timed; no data)
estimate: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python tools/estimate.py $(CONFIG)

## make report: the HTML report (results/report.html) of the finished run of $(CONFIG)
report: $(STAMP)
	$(SNAKEMAKE) --cores 1 --configfile $(CONFIG) --report results/report.html

## make test: set-up, format + lint, unit and workflow tests (what CI runs; snakemake --lint
## is one of the workflow tests, tests/workflow/test_workflow.py::test_lint)
# -n auto --dist loadfile --no-loadscope-reorder: one worker per file, files in the order of
# tests/conftest.py (workflow files first, the tiny run's readers first of all; unit tests fill
# the other workers). (loadgroup would be the natural mode, but pytest-xdist 3.8 cannot rename
# test ids under pytest 9, so its groups are silently ignored.)
test: $(STAMP) style
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder --durations=15

## make style: ruff (lint + format check), snakefmt --check
style: $(STAMP)
	$(BIN)/ruff check src tests workflow/scripts
	$(BIN)/ruff format --check src tests workflow/scripts
	$(BIN)/snakefmt --check Snakefile workflow/rules

## make lint: style, then snakemake --lint
lint: style
	$(SNAKEMAKE) --lint --configfile config/test.yaml

## make bench: the library benchmarks (pytest-benchmark, tests/benchmarks)
bench: $(STAMP)
	$(BIN)/python -m pytest tests/benchmarks --benchmark-enable -q -p no:cacheprovider

## make clean: delete the results, logs, benchmarks and Snakemake's records (keeps .venv)
clean:
	rm -rf results logs benchmarks .snakemake
