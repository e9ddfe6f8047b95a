# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PIP_INSTALL := $(BIN)/pip install --quiet --disable-pip-version-check

.PHONY: install demo serve test lint bench chromium postgres redis lock clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -c constraints.txt -e '.[dev,postgres]'
	touch $(STAMP)

install: $(STAMP)

## The EMS with a simulated CPO on an embedded SQLite database.
demo: install
	$(BIN)/ems demo

serve: install
	$(BIN)/ems serve

## Debian's Chromium for the browser tests (Playwright cannot download a browser here).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

## Debian's PostgreSQL server for the tests that run on both databases (issue #18); the tests
## start a throw-away cluster of their own (tests/support/with_postgres.sh).
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	fi

## Debian's Redis server, the broker of the cluster tests (issue #18); each such test starts a
## throw-away server of its own on a Unix socket (tests/support/redis.py).
redis:
	@if [ ! -x /usr/bin/redis-server ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## The unit tests on both cores (a file's tests stay on one worker, so a module's fixture is built
## once), then the e2e tests one at a time: they start processes of their own and wait on them.
test: install chromium postgres redis lint
	cd $(CURDIR) && EMS_DATABASE_URL=sqlite:///$$(mktemp -d)/alembic-check.db $(BIN)/ems db check
	tests/support/with_postgres.sh sh -c 'EMS_DATABASE_URL="$$EMS_TEST_POSTGRES_URL" $(BIN)/ems db check'
	tests/support/with_postgres.sh sh -c '\
		rc=0; \
		$(BIN)/pytest -q -n 2 --dist loadfile -m "not e2e" --durations=10 || rc=1; \
		$(BIN)/pytest -q -m e2e --durations=10 || rc=1; \
		exit $$rc'

bench: install postgres redis
	tests/support/with_postgres.sh $(BIN)/python -m benchmarks

## Re-pin every dependency after changing pyproject.toml (commit constraints.txt).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e '.[dev,postgres]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
