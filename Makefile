# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
# The CPU build of torch is pinned here, installed first; the package itself accepts torch>=2.2.
TORCH  := torch==2.13.0
# Tests and the report run on AVX2 kernels: what the docs state was measured on them, and an AVX-512 CPU sums
# in another order, and MKL's default matrix products change their last bits with the CPU and the batch size
# (seethrough.zoo.pinned). Benchmarks run on the machine's own kernels.
PINNED := ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2,STRICT

.PHONY: demo test bench screenshots chromium datasets clean
SUDO   := $(if $(filter 0,$(shell id -u)),,sudo)

$(PY):
	python3 -m venv $(VENV)
	$(PIP) $(TORCH)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) $(TORCH) -e '.[scan,text]'
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) $(TORCH) -e '.[test]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed
	$(PIP) $(TORCH) -e '.[bench]'
	# --no-deps: quantus asks for opencv-python (GUI build), kronfluence and zennit for torchvision (replaces the
	# CPU torch; benchmarks/_bench.py lets zennit load without it)
	$(PIP) --no-deps 'quantus>=0.6' 'kronfluence>=1.0' 'zennit>=0.5'
	touch $@

demo: $(VENV)/.installed
	$(PINNED) $(VENV)/bin/seethrough report --out report

test: $(VENV)/.installed-test chromium datasets
	$(PINNED) $(PY) -m pytest

# The explorer's browser tests drive Debian's Chromium through Playwright (`playwright install`
# is never run: it downloads a browser). Without it those tests skip and say why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
		echo "warning: could not install chromium (apt-get install -y chromium chromium-driver); the browser tests will skip"

# Fashion-MNIST (70,000 images) for scans, from Debian's dataset-fashion-mnist (no download at run time).
# Without it the Fashion-MNIST test skips and says why; see.scan.fashion_mnist() names the package.
datasets:
	@test -e /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null; } || \
		echo "warning: could not install dataset-fashion-mnist (apt-get install -y dataset-fashion-mnist); its scan test will skip"

# The README's explorer pictures, taken by the browser tests themselves.
screenshots: $(VENV)/.installed-test chromium
	$(PINNED) SEETHROUGH_SCREENSHOTS=docs/img/explorer $(PY) -m pytest -q -m browser tests/web/test_browser.py tests/web/test_text_view.py

bench: $(VENV)/.installed-bench datasets
	$(PY) benchmarks/run.py --json out/bench-run.json
	$(PY) benchmarks/scaling.py --json out/bench-scaling.json
	$(PY) benchmarks/incremental_occlusion.py
	$(PY) benchmarks/tsne.py --large
	$(PY) benchmarks/bench_optimize.py
	$(PY) benchmarks/trust.py
	$(PY) benchmarks/bench_concepts.py
	$(PY) benchmarks/explorer.py
	$(PY) benchmarks/scan.py
	$(PY) benchmarks/scan_analyses.py
	$(PY) benchmarks/tabular.py

clean:
	rm -rf $(VENV) report
