# Gatehouse. The two commands for a fresh machine: `make run` and `make test`.
# Both create .venv from requirements.lock first (idempotent: only when the lock changed).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_PIN := $(shell grep -E '^uv==' requirements.lock | cut -d' ' -f1)

.PHONY: run dev serve-prod test lint fmt migrate migration lock bench bench-auth test-postgres clean openapi

$(STAMP): requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# uv installs the lock exactly (hashes checked); it is pinned in the lock itself.
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(UV_PIN)"
	@$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes requirements.lock
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m app serve

# Production: `make migrate` first (the deploy step), then e.g. `make serve-prod WORKERS=4`;
# the settings (SECRET_KEY, PUBLIC_URL, DATABASE_URL, REDIS_URL, MAIL_URL, HOST) come from the
# environment or .env. See the README's "Running in production".
WORKERS ?= 2
serve-prod: $(STAMP)
	ENVIRONMENT=production $(BIN)/python -m app serve --workers $(WORKERS)

# `make run` that restarts on every code change (development).
dev: $(STAMP)
	$(BIN)/python -m app serve --reload

migrate: $(STAMP)
	$(BIN)/python -m app migrate

# make migration MODULE=users MSG="add a column"
migration: $(STAMP)
	$(BIN)/python -m app migrate --module $(MODULE) --new "$(MSG)"

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The same suite against PostgreSQL (127.0.0.1:5432, database test).
test-postgres: $(STAMP)
	TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Regenerate docs/openapi.json (the committed API contract) after changing a route or schema.
# Refuses a breaking change that CHANGELOG.md does not quote (see scripts/openapi_contract.py).
openapi: $(STAMP)
	$(BIN)/python -m scripts.openapi_contract write

# Regenerate the lock after changing pyproject.toml.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --group dev --python-version 3.11 --generate-hashes -o requirements.lock

# Gatehouse against stock fastapi-users and a bare FastAPI ceiling (needs wrk); rewrites
# docs/benchmarks.md. BENCH_QUICK=1: a short smoke run that prints and writes nothing.
bench: $(STAMP)
	@command -v wrk >/dev/null || { echo "make bench needs wrk (the HTTP load generator): sudo apt-get install wrk (Debian/Ubuntu) or brew install wrk (macOS)"; exit 2; }
	$(BIN)/python -m scripts.bench

bench-auth: $(STAMP)
	$(BIN)/python -m scripts.bench_auth

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
