# Two commands do all the set-up on a fresh Debian machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: test demo setup os-deps lint bench clean

VENDOR := ioc/static/vendor

setup: os-deps $(VENV)/.installed $(VENDOR)/uPlot.iife.min.js

os-deps:
	@scripts/setup-os.sh

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[test,dev]'
	@touch $@

# The console's chart library (uPlot) from the npm registry, at the version package-lock.json
# pins; the page loads it from /static/vendor (no CDN: the wall screens may have no internet).
node_modules/.package-lock.json: package.json package-lock.json
	@npm ci --no-audit --no-fund --loglevel=error

$(VENDOR)/uPlot.iife.min.js: node_modules/.package-lock.json
	@mkdir -p $(VENDOR)
	@cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css $(VENDOR)/

# Then one ingest module again with the accelerators off (ioc/fast): the plain reference
# paths of decoding and COPY encoding, end to end. REFERENCE_TESTS= skips it.
REFERENCE_TESTS ?= tests/integration/ingest/test_delivery.py

test: setup
	@$(VENV)/bin/ruff check .
	@set +e; $(VENV)/bin/pytest -q --timeout=600 $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; \
	  if [ -n "$(REFERENCE_TESTS)" ]; then \
	    echo "== IOC_ACCELERATE=false $(REFERENCE_TESTS)"; \
	    IOC_ACCELERATE=false $(VENV)/bin/pytest -q --timeout=600 $(REFERENCE_TESTS); ref=$$?; \
	    if [ $$rc -eq 0 ]; then rc=$$ref; fi; \
	  fi; exit $$rc

demo: setup
	@$(VENV)/bin/ioc demo

lint: $(VENV)/.installed
	@$(VENV)/bin/ruff check .
	@duplicates 2>/dev/null || true

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache node_modules $(VENDOR)
