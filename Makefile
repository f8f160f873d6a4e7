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

run: $(STAMP)
	NUMBA_CACHE_DIR=$(CURDIR)/.numba_cache $(VENV)/bin/blis run --model meta-llama/llama-3.1-8b-instruct --hardware H100 --tp 1 \
		--num-instances 4 --routing-policy weighted --rate 60 --num-requests 1000 \
		--prompt-tokens 512 --prompt-tokens-stdev 256 --output-tokens 256 --output-tokens-stdev 128 --log info

bench: $(STAMP)
	NUMBA_CACHE_DIR=$(CURDIR)/.numba_cache $(PY) benchmarks/bench_run.py --repeats 5 --cold --json bench-results.json

clean:
	rm -rf $(VENV) .numba_cache
