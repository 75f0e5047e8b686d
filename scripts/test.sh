#!/usr/bin/env bash
# Run every check CI runs: lint (ruff), types (mypy), the test suite (pytest).
# Creates .venv on first use; extra arguments go to pytest (e.g. scripts/test.sh -k routing).
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ruff check .
ruff format --check --quiet chaoskit tests
mypy
exec python -m pytest "$@"
