# flickora: `make install && make run` brings the app up; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install system-packages run test lint format bench eval

install: $(VENV)/bin/activate system-packages
	$(PIP) install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PIP) install --quiet --disable-pip-version-check --no-deps -r requirements-data.txt

# Debian packages the tests and benchmarks use (Redis for the cache tests, Chromium for the browser tests, openssl
# for the LLM client's HTTPS tests, wrk for make bench's pages); installed when root, else listed.
SYSTEM_PACKAGES := redis-server chromium openssl wrk
system-packages:
	@missing=""; for package in $(SYSTEM_PACKAGES); do \
		dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
		else echo "Please install:$$missing (Debian packages, for the tests)"; fi; fi

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)

# Local development on the embedded PostgreSQL: migrate, queue the import of every film (the 761 Wikipedia films
# first, then the 16,904 of the Wikidata catalogue; later runs queue nothing new), then start the Procfile's web and
# worker processes together (honcho). The 761 Wikipedia films are served within a minute (their section vectors ship
# with the code); the catalogue's appear as the worker embeds them (python manage.py import_status, or the line on
# the catalogue page).
run: export DEBUG ?= 1
run: export HOST ?= 127.0.0.1
run: export PORT ?= 8000
run: export WEB_CONCURRENCY ?= 1
run:
	$(PY) manage.py migrate --noinput
	$(PY) manage.py import_movies --background --catalogue
	@echo "flickora is at http://$(HOST):$(PORT)/"
	$(VENV)/bin/honcho start --env /dev/null --port $(PORT)

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format:
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

test: lint
	DEBUG=1 $(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest

# Ingest, streams and retrieval on their own embedded PostgreSQL (var/bench), quick (README: how long, and what it
# leaves out): bench/results.json, bench/results.md (also printed) and bench/latency.png. More:
# python -m benchmarks [--large] [PART ...] (benchmarks/__main__.py).
bench:
	$(PY) -m benchmarks --quick


# Answer quality on eval/questions.jsonl (film recall for the all-films chat, fact accuracy on film pages), both
# halves, on the development database (make run imports the films): eval/results.json.
eval:
	DEBUG=1 $(PY) manage.py migrate --noinput
	DEBUG=1 $(PY) manage.py import_movies
	DEBUG=1 $(PY) manage.py evaluate_answers --no-progress --json eval/results.json
