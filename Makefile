# questdb: `make run` serves the app on the embedded default; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# The test configuration: the local PostgreSQL primary, its hot standby on 5433 and Redis (database 15).
TEST_ENV := DATABASE_URL=postgres://postgres@127.0.0.1:5432/questdb \
	DB_READ_HOST=127.0.0.1:5433 \
	REDIS_URL=redis://127.0.0.1:6379/15 \
	CACHE_KEY_PREFIX=questdb-test

# The identity harness: the real better-auth from the npm registry, pinned by its lockfile.
IDENTITY := tests/identity
# Python code generated from proto/ into questdb/v1/ (not committed; see the README's gRPC section).
PROTOS := $(wildcard proto/questdb/v1/*.proto)
GENERATED := questdb/v1/.generated
NODE_CLIENT := tests/grpc/node

# `make run HOST=0.0.0.0 PORT=8080` to serve elsewhere.
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench standby-start standby-stop services browser clean proto

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

$(GENERATED): $(PROTOS) | $(VENV)/.runtime
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)
	touch $@

proto: $(GENERATED)

# The independent Node gRPC client of the tests, from its lockfile.
$(NODE_CLIENT)/node_modules/.installed: $(NODE_CLIENT)/package.json $(NODE_CLIENT)/package-lock.json
	cd $(NODE_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: $(VENV)/.runtime $(GENERATED)
	$(BIN)/python manage.py migrate --noinput
	@echo
	@echo "questdb is starting on http://$(HOST):$(PORT) (staff console: http://$(HOST):$(PORT)/admin/, API docs: /api/docs/)"
	@echo "Create a staff account in another terminal: $(BIN)/python manage.py createsuperuser"
	@echo "Add demo users, characters and sessions:    $(BIN)/python manage.py seed_demo  (--reset to start over)"
	@echo "Create an API key: $(BIN)/python manage.py create_api_key my-service --scope write"
	@echo
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

services:
	scripts/services.sh

browser:
	scripts/browser.sh

standby-start: services
	scripts/standby.sh start

standby-stop:
	scripts/standby.sh stop

$(IDENTITY)/node_modules/.installed: $(IDENTITY)/package.json $(IDENTITY)/package-lock.json
	scripts/node.sh
	cd $(IDENTITY) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: $(VENV)/.dev $(GENERATED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile
	$(BIN)/lint-imports --no-cache
	cd proto && ../$(BIN)/buf lint
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres $(BIN)/python manage.py makemigrations --check --dry-run

test: $(VENV)/.dev $(GENERATED) $(IDENTITY)/node_modules/.installed $(NODE_CLIENT)/node_modules/.installed standby-start browser lint
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

bench: $(VENV)/.dev $(GENERATED) standby-start
	$(BIN)/python -m bench $(if $(SIZE),--users $(SIZE))

clean:
	rm -rf $(VENV) db.sqlite3 var .pytest_cache .ruff_cache questdb/v1 $(IDENTITY)/node_modules $(NODE_CLIENT)/node_modules
