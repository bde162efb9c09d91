# The two commands of README.md are `make demo` and `make test`.
.PHONY: install demo test test-slow test-faults lint bench up down clean-state

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

# The fault suite's full run on its own Kafka + Postgres (docs/fault-suite.md);
# its CI form runs in `make test`.
test-faults: install
	.venv/bin/pytest -s -m slow tests/faults

bench: install
	.venv/bin/python -m bench

up: install
	.venv/bin/kernel up

down:
	.venv/bin/kernel down
