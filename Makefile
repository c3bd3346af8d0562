# The two commands a newcomer needs: `make dev` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
MODE ?= kafka

.PHONY: install dev test bench proto

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: install
	$(VENV)/bin/webhooks dev --mode $(MODE)

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(VENV)/bin/webhooks bench

# Regenerate the Protobuf / gRPC code from shared/proto/updates.proto (committed).
proto: install
	$(PY) -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. shared/proto/updates.proto
