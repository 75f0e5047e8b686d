# Sourced by the scripts in this folder: make .venv exist with chaoskit installed (editable, dev extras).
# Re-installs only when pyproject.toml (or the interpreter) changed since the last install, so
# repeated runs start fast.
#
# Interpreter: the first Python >= 3.12 found, 3.12 first (python3.12..python3.14 on PATH, pyenv's versions,
# /usr/bin, /usr/local/bin), else python3 if it is >= 3.11. Why prefer 3.12: mitmproxy releases
# with the fix for CVE-2025-23217 (mitmweb without authentication) and with h11 >= 0.16
# (CVE-2025-43859) need Python >= 3.12; on 3.11 pip can only install mitmproxy 11.0.2, and
# chaoskit then refuses its web UI (docs/reliability.md §9). CHAOSKIT_PYTHON overrides the choice.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.chaoskit-installed"

_chaoskit_runs() {  # does "$1" run, and is it at least Python 3.$2?
    "$1" -c "import sys, venv; sys.exit(sys.version_info < (3, $2))" > /dev/null 2>&1
}

_chaoskit_python() {
    if [ -n "${CHAOSKIT_PYTHON:-}" ]; then
        echo "$CHAOSKIT_PYTHON"
        return
    fi
    local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}" minor candidate
    for minor in 12 13 14; do
        for candidate in "python3.$minor" "$pyenv_root"/versions/3."$minor"*/bin/python3."$minor" \
            "/usr/local/bin/python3.$minor" "/usr/bin/python3.$minor"; do
            if _chaoskit_runs "$candidate" 12; then
                echo "$candidate"
                return
            fi
        done
    done
    if _chaoskit_runs python3 11; then
        echo "python3"
        return
    fi
    echo "chaoskit needs Python >= 3.11 (>= 3.12 preferred); none found" >&2
    return 1
}

python_bin="$(_chaoskit_python)"
python_version="$("$python_bin" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$python_version" ]; then
    echo "re-creating $venv for Python $python_version (was $(cat "$stamp"))" >&2
    rm -rf "$venv"
fi
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
    echo "setting up $venv with Python $python_version (first run only; pip output in $venv/install.log)" >&2
    [ -x "$venv/bin/python" ] || "$python_bin" -m venv "$venv"
    if ! { "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
           "$venv/bin/python" -m pip install --disable-pip-version-check -e "$root[dev]"; } \
           > "$venv/install.log" 2>&1; then
        tail -n 30 "$venv/install.log" >&2
        echo "installing chaoskit into $venv failed (full log: $venv/install.log)" >&2
        exit 1
    fi
    echo "$python_version" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
cd "$root"
