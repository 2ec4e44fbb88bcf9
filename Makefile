# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create and fill .venv when it is missing or setup.cfg changed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Quiet TensorFlow's C++ start-up chatter; errors still show.
export TF_CPP_MIN_LOG_LEVEL ?= 2
# pytest workers: two cores on the reference machine.
JOBS ?= 2

.PHONY: venv demo test test-all clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[train,dev]"
	touch $@

demo: venv
	$(PY) -m locnet_tf.demo

test: venv
	$(PY) -m pytest -n $(JOBS) --durations=15

test-all: venv
	$(PY) -m pytest -n $(JOBS) -m "" --durations=15

clean:
	rm -rf runs export/* build *.egg-info
