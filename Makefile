# The two commands of the README: `make demo` (train + evaluate Isaac-Cartpole-Direct locally) and `make test`.
.PHONY: setup demo test lab bench clean-runs

VENV := .venv/bin

setup:
	@scripts/bootstrap.sh

demo: setup
	@$(VENV)/python -m workbench.demo

test:
	@scripts/bootstrap.sh --test
	@$(VENV)/python -m pytest -q -ra tests

lab: setup
	@$(VENV)/python -m workbench.lab

bench: setup
	@$(VENV)/python -m bench
