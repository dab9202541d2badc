# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help run test lint bench clean
.DEFAULT_GOAL := help

## help: this list
help:
	@sed -n 's/^## /  /p' $(MAKEFILE_LIST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	@touch $@ $(VENV)/.installed

## run: start the bot with the settings from .env / the environment
run: $(VENV)/.installed
	@$(BIN)/python -m bot

# The suite mostly waits (answers stream in real time, at Telegram's pace): two workers halve it.
TEST_WORKERS ?= 2

## test: the whole suite (fake Telegram + fake model backend over loopback HTTP)
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

## lint: ruff, mypy and hadolint, as CI runs them
lint: $(VENV)/.installed-test
	$(BIN)/ruff check bot config tests bench
	$(BIN)/ruff format --check bot config tests bench
	$(BIN)/mypy bot config
	$(BIN)/hadolint Dockerfile

## bench: the bot against the fakes at 1, 10, 25, 50 and 200 chats (~2 min); see BENCHMARKS.md
bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench.run

## clean: remove the virtualenv and the tools' caches
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

## docker-test: build the image and run it against the fakes (needs a Docker daemon)
.PHONY: docker-test
docker-test: $(VENV)/.installed-test
	RUN_DOCKER_TESTS=1 $(BIN)/python -m pytest -m docker tests/test_docker.py
