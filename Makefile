# The two commands of README.md are `make demo` and `make test`.
.PHONY: install demo test test-slow test-corpus lint bench up down clean-state

install:
	@bash ops/install.sh

demo: install
	.venv/bin/kernel demo

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

test: lint
	.venv/bin/pytest

test-slow: install
	.venv/bin/pytest -m slow

# The bad-input corpus in full (many hypothesis examples), with its counts table.
test-corpus: install
	.venv/bin/pytest -s -m slow tests/integration/corpus

bench: install
	.venv/bin/python -m bench

up: install
	.venv/bin/kernel up

down:
	.venv/bin/kernel down
