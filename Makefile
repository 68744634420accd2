# Two commands do everything on a fresh machine (Debian/Ubuntu or a laptop with internet):
#   make demo   installs the library in .venv and trains on Fashion-MNIST, printing the test report
#   make test   installs the library and its dev tools in .venv and runs the whole test suite
# Both are idempotent: the virtual environment and the data are made once and reused.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The PyTorch build to install; override e.g. TORCH_SPEC="torch torchvision" for the newest.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
RUN_DIR ?= runs/quickstart-$(shell date +%Y%m%d-%H%M%S)

.PHONY: demo test lint docs data install clean-venv

demo: $(VENV)/.installed data
	$(PY) -m finetune_kit train --config examples/configs/quickstart.toml --output-dir $(RUN_DIR)

test: $(VENV)/.installed data
	$(PY) -m ruff check src tests examples benchmarks
	$(PY) -m ruff format --check src tests examples benchmarks docs/conf.py
	$(PY) -m pytest -q --doctest-modules src/finetune_kit tests
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

docs: $(VENV)/.installed
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# Fashion-MNIST from Debian's package where apt-get can be used; elsewhere the library downloads it.
data:
	@if [ -f $(FMNIST) ]; then \
		echo "Fashion-MNIST: $(dir $(FMNIST))"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -q dataset-fashion-mnist || { apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }; \
	else \
		echo "Fashion-MNIST is not installed system-wide; finetune_kit will download it to ~/.cache/finetune_kit."; \
	fi

clean-venv:
	rm -rf $(VENV)
