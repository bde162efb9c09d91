# The two commands of README.md are `make demo` and `make test`.
.PHONY: install demo test test-slow test-corpus test-faults test-doors lint bench up down clean-state release

install:
	@bash ops/install.sh

demo: install
	.venv/bin/kernel demo

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports

# Two workers, one test file each at a time, on one shared Kafka + Postgres
# (tests are isolated by topic prefix and database): ~7 min here instead of ~13.
test: lint
	.venv/bin/pytest -n 2 --dist loadfile

test-slow: install
	.venv/bin/pytest -m slow

# The bad-input corpus in full (many hypothesis examples), with its counts table.
test-corpus: install
	.venv/bin/pytest -s -m slow tests/integration/corpus

# The full runs of the fault suite (on its own Kafka + Postgres, docs/fault-suite.md)
# and of the corpus, each printing its table; their short forms run in `make test`.
test-faults: install
	.venv/bin/pytest -s -m slow tests/faults tests/integration/corpus

# Bad input at the API's doors in full: schemathesis as every role (a table of
# requests per role) and the route x role x identity matrix; short forms run in `make test`.
test-doors: install
	.venv/bin/pytest -s -m 'slow or not slow' tests/e2e/test_api_schemathesis.py tests/e2e/test_api_doors.py

bench: install
	.venv/bin/python -m pip install -q -e '.[bench]'
	.venv/bin/python -m bench

# The signed release of HEAD in dist/release (docs/releasing.md): sdist, wheel, image
# build context and release-manifest.json, signed with KERNEL_RELEASE_KEY (or the token).
release: install
	rm -rf dist/release
	.venv/bin/kernel release --out dist/release

up: install
	.venv/bin/kernel up

down:
	.venv/bin/kernel down
