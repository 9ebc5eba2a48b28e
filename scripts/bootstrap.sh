#!/usr/bin/env bash
# Set up everything the workbench needs on this machine, idempotently (a second run takes seconds):
#   - Debian packages for headless OpenGL video (EGL/GL, Mesa) when run as root (or with sudo)
#   - a Python 3.12 virtual environment in .venv with pinned dependencies and the workbench (editable)
# Usage: scripts/bootstrap.sh [--test]   (--test adds chromium, Docker, debootstrap and the npm tools the tests use)
set -euo pipefail
cd "$(dirname "$0")/.."
with_test=false
[ "${1:-}" = "--test" ] && with_test=true

say() { printf '[bootstrap] %s\n' "$*"; }

find_python312() {
  local candidate
  for candidate in "${PYTHON312:-}" python3.12 python3 \
      "$(command -v pyenv >/dev/null 2>&1 && pyenv root)"/versions/3.12*/bin/python3.12 \
      "${CONDA_PREFIX:-/nonexistent}/bin/python"; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; then
      command -v "$candidate" || echo "$candidate"
      return 0
    fi
  done
  return 1
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { say "please install: ${missing[*]} (needs root)"; return 0; }
    sudo="sudo"
  fi
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if command -v apt-get >/dev/null 2>&1; then
  apt_install libegl1 libgl1 libopengl0 libxrender1 libegl-mesa0 libgl1-mesa-dri libglx-mesa0
  if $with_test; then
    apt_install chromium fonts-liberation
    # The job image is built and run for real: a Docker engine, and debootstrap for the local base image.
    apt_install docker.io debootstrap
  fi
fi

stamp_inputs="$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)"
stamp=".venv/.bootstrap-$stamp_inputs"
if [ ! -f "$stamp" ]; then
  py="$(find_python312)" || { say "Python 3.12 not found: install it (pyenv install 3.12, or conda env create -f environment.yml) or set PYTHON312"; exit 1; }
  say "using $py"
  if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    rm -rf .venv  # missing, or left half-made by an interrupted run
    "$py" -m venv .venv
  fi
  .venv/bin/python -m pip install -q --upgrade pip
  say "installing Isaac Lab 3.0 and the workbench into .venv (first time: a few minutes, ~8 GB)"
  .venv/bin/python -m pip install -q -e ".[isaaclab,results,notebooks,aws,infra,test]"
  .venv/bin/python -m ipykernel install --sys-prefix --name workbench --display-name "Isaac Lab Workbench" >/dev/null
  rm -f .venv/.bootstrap-*
  touch "$stamp"
fi

if $with_test; then
  for dir in tests/browser infra; do
    [ -f "$dir/package.json" ] || continue
    npm_stamp="$dir/node_modules/.bootstrap-$(sha256sum "$dir/package-lock.json" | cut -c1-16)"
    if [ ! -f "$npm_stamp" ]; then  # missing, or installed from an older package-lock.json
      say "installing npm packages in $dir"
      (cd "$dir" && npm ci --silent --no-audit --no-fund)
      touch "$npm_stamp"
    fi
  done
fi

# --- template validators (cfn-lint, checkov) for tests/infra/test_validators.py -------------------------------
# In their own venv: checkov's pins (boto3, packaging, networkx) clash with .venv's. Rebuilt when the pins change.
if $with_test; then
  validators_stamp=".venv/validators/.bootstrap-$(sha256sum infra/requirements-validators.txt | cut -c1-16)"
  if [ ! -f "$validators_stamp" ]; then
    say "installing cfn-lint and checkov into .venv/validators (pinned in infra/requirements-validators.txt)"
    rm -rf .venv/validators
    .venv/bin/python -m venv .venv/validators
    .venv/validators/bin/python -m pip install -q --no-deps -r infra/requirements-validators.txt
    touch "$validators_stamp"
  fi
fi
# --- end of template validators ------------------------------------------------------------------------------
say "ready: .venv ($(.venv/bin/python --version))"
