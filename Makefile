# Set-up and everyday commands. `make train` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch where no CUDA GPU is present; a GPU machine gets the CUDA
# build that the package's torch range pulls from the index.
CPU_TORCH := torch==2.13.0
# The exact versions the tests last passed with (torch aside, see above).
CONSTRAINTS := requirements/constraints.txt
ARGS ?=

.PHONY: install install-dev train lint test test-all bench bench-gpu report constraints readme-comparison readme-replicas readme-protocol clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi >/dev/null 2>&1; then \
		echo "no CUDA GPU found: installing the CPU build $(CPU_TORCH)"; \
		$(PY) -m pip install --quiet $(CPU_TORCH); \
	fi

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Train the default config (the notebook's Adam run); pass overrides with ARGS="optimizer=sgd".
train: install
	$(PY) train.py $(ARGS)

## The linter and the formatter's check (ruff, configured in pyproject.toml; pre-commit runs the same).
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## The linter, then the quick test suite (slow tests are marked and skipped), one worker per core.
test: lint
	$(PY) -m pytest -n auto --dist loadgroup $(ARGS)

## Every test, slow ones included.
test-all: install-dev
	$(PY) -m pytest -n auto --dist loadgroup -m "" $(ARGS)

## Speed against the notebook's plain loop, the ablation of each speed measure and the sweep launchers (about 25 minutes on two cores); GPU steps/s on a CUDA machine.
bench: install-dev
	$(PY) benchmarks/bench_train.py $(ARGS)

bench-gpu: install
	$(PY) benchmarks/bench_gpu.py

## Record the versions installed now as the tested ones (after the suite passed with them).
constraints: install-dev
	{ sed -n '1,3p' $(CONSTRAINTS); $(PY) -m pip freeze --exclude-editable | grep -viE '^(torch|optlab)=='; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

## Rebuild a sweep's report: make report SWEEP=logs/multiruns/<date>_<time>
report: install
	$(PY) -m optlab.report $(SWEEP)

## Re-run the notebook's three-optimizer comparison and refresh the README's figure.
README_SWEEP := logs/multiruns/readme_$(shell date +%Y-%m-%d_%H-%M-%S)
readme-comparison: install
	$(PY) train.py experiment=optimizer_comparison hydra.sweep.dir=$(README_SWEEP) callbacks.progress_bar.refresh_rate=0
	$(PY) scripts/refresh_readme_comparison.py $(README_SWEEP)

## The same comparison with ten seeds per optimizer trained together (replicas=10): the README's second figure.
README_REPLICAS := logs/multiruns/readme_replicas_$(shell date +%Y-%m-%d_%H-%M-%S)
readme-replicas: install
	$(PY) train.py experiment=optimizer_comparison replicas=10 hydra.sweep.dir=$(README_REPLICAS) callbacks.progress_bar.refresh_rate=0
	$(PY) scripts/refresh_readme_comparison.py $(README_REPLICAS) replicas_comparison.png

## The optimizer protocol on the notebook's data (148 trained models): the README's protocol figures.
README_PROTOCOL := logs/protocols/readme_protocol
readme-protocol: install
	$(PY) train.py experiment=optimizer_protocol hydra.sweep.dir=$(README_PROTOCOL) hydra/launcher=parallel $(ARGS)
	cp $(README_PROTOCOL)/sensitivity.png docs/protocol_sensitivity.png
	cp $(README_PROTOCOL)/confirmed.png docs/protocol_confirmed.png

clean-venv:
	rm -rf $(VENV)
