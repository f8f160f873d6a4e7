VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test run bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	NUMBA_CACHE_DIR=$(CURDIR)/.numba_cache $(PY) -m pytest tests

# The product's main job: the default 50-generation policy search (embedded default experiment),
# writing champion.yaml, report.md and the rest to $(OUT).
WORKERS ?= 2
OUT ?= results/default
run: $(STAMP)
	NUMBA_CACHE_DIR=$(CURDIR)/.numba_cache $(PY) -m search.evolve --generations 50 --workers $(WORKERS) --out $(OUT)
	@cat $(OUT)/report.md

bench: $(STAMP)
	NUMBA_CACHE_DIR=$(CURDIR)/.numba_cache $(PY) benchmarks/bench_run.py --repeats 5 --cold --json bench-results.json

clean:
	rm -rf $(VENV) .numba_cache
