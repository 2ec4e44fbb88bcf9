# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create and fill .venv when it is missing or setup.cfg changed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Quiet TensorFlow's C++ start-up chatter; errors still show.
export TF_CPP_MIN_LOG_LEVEL ?= 2
# pytest workers (override with `make test JOBS=8`).
JOBS ?= 2

.PHONY: venv demo lint test test-fast test-all wheel clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[train,dev]"
	touch $@

demo: venv
	$(PY) -m locnet_tf.demo

# ruff's lint and format check (configured in pyproject.toml); `make test` runs it first.
lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Everything: lint, then every test including the slow ones (CI runs this).
test: lint
	$(PY) -m pytest -n $(JOBS) --durations=15

# A quicker pass: lint and the tests not marked slow.
test-fast: lint
	$(PY) -m pytest -n $(JOBS) -m "not slow" --durations=15

test-all: test

# The wheel to copy to a device (README "Install"): dist/locnet_tf-VERSION-py3-none-any.whl, with the
# package data. Needs only a Python with pip (setuptools comes from the registry). build/ goes first:
# setuptools would otherwise ship modules that were deleted or moved since the last build.
wheel:
	rm -rf build
	$(PYTHON) -m pip wheel --no-deps --wheel-dir dist .

clean:
	rm -rf runs export/* build *.egg-info
