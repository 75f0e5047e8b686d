#!/usr/bin/env bash
# CI: what a user installs is what we test. Build the sdist, then the wheel from that sdist (so a
# file missing from the sdist fails here), install the wheel into a fresh venv (no editable
# install, no repository on sys.path) and run ci/user_suite/ from a temporary folder.
# Uses .venv's Python and pip's cache, so the dependencies come from the cache after one run.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$SECONDS
python -m pip install --disable-pip-version-check --quiet build
python -m build --outdir "$work/dist" . > "$work/build.log" 2>&1 || { tail -n 30 "$work/build.log"; exit 1; }
python -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --disable-pip-version-check --quiet \
    "$work"/dist/chaoskit-*.whl httpx
mkdir "$work/user" && cp ci/user_suite/*.py ci/user_suite/pytest.ini "$work/user/"
cd "$work/user"
"$work/venv/bin/python" -m pytest -q
echo "wheel check: $(ls "$work/dist" | tr '\n' ' ')in $((SECONDS - start)) s"
