# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
# The CPU build of torch is pinned here, installed first; the package itself accepts torch>=2.2.
TORCH  := torch==2.13.0

.PHONY: demo test bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) $(TORCH)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) $(TORCH) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) $(TORCH) -e '.[test]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed
	$(PIP) $(TORCH) -e '.[bench]'
	# --no-deps: quantus asks for opencv-python (GUI build), kronfluence for torchvision (replaces the CPU torch)
	$(PIP) --no-deps 'quantus>=0.6' 'kronfluence>=1.0'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/seethrough report --out report

test: $(VENV)/.installed-test
	$(PY) -m pytest

bench: $(VENV)/.installed-bench
	$(PY) benchmarks/run.py
	$(PY) benchmarks/tsne.py --large
	$(PY) benchmarks/bench_optimize.py
	$(PY) benchmarks/trust.py
	$(PY) benchmarks/bench_concepts.py

clean:
	rm -rf $(VENV) report
