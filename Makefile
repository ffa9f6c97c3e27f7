# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= all
CONFIG ?= config/config.yaml

.PHONY: run test setup lint unit workflow-test slurm-test bench report clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

## make run: set-up, the embedded default workflow, the report, the claims table
run: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --cores $(CORES) --configfile $(CONFIG)
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --cores 1 --configfile $(CONFIG) --report results/report.html
	cut -f1,4-9 results/stats/claims.tsv | column -t -s "$$(printf '\t')"

## make test: set-up, format + lint, snakemake --lint, unit and workflow tests (what CI runs)
test: $(STAMP) lint
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests workflow/scripts
	$(BIN)/ruff format --check src tests workflow/scripts
	$(BIN)/snakefmt --check Snakefile workflow/rules
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --lint --configfile config/test.yaml

bench: $(STAMP)
	$(BIN)/python -m pytest tests/benchmarks --benchmark-enable -q -p no:cacheprovider

clean:
	rm -rf results logs benchmarks .snakemake
