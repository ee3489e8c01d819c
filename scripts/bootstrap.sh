#!/usr/bin/env bash
# Idempotent set-up of the CHEF workspace on a fresh Debian 12 machine:
#   1. Debian packages for headless MuJoCo rendering (EGL + llvmpipe), if missing; with --test-deps
#      also what only the tests need: headless Chromium (`chef status --web`'s page test);
#   2. .venv with the pinned wheels (requirements*.txt, constraints.txt), if they changed;
#   3. colcon build --symlink-install, if a package manifest or the file list changed.
# Each step records a hash of its inputs, so a second run with nothing changed takes ~1 s.
# Usage: scripts/bootstrap.sh [--quiet] [--force] [--test-deps]   (`./chef test` passes --test-deps)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
QUIET=0
FORCE=0
TEST_DEPS=0
for a in "$@"; do
  case "$a" in
    --quiet) QUIET=1 ;;
    --force) FORCE=1 ;;
    --test-deps) TEST_DEPS=1 ;;
    *) echo "bootstrap: unknown option $a" >&2; exit 2 ;;
  esac
done
say() { [ "$QUIET" = 1 ] || echo "[bootstrap] $*"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# --- 1. Debian packages ------------------------------------------------------------------------
missing=()
ldconfig -p | grep -q 'libEGL.so.1 ' || missing+=(libegl1)
ldconfig -p | grep -q 'libEGL_mesa.so.0' || missing+=(libegl-mesa0)
ldconfig -p | grep -q 'libGL.so.1 ' || missing+=(libgl1)
ls /usr/lib/*/dri/swrast_dri.so >/dev/null 2>&1 || ls /usr/lib/*/dri/*swrast* >/dev/null 2>&1 \
  || missing+=(libgl1-mesa-dri)
if [ "$TEST_DEPS" = 1 ]; then      # test-only: `chef loop` never pays for these
  command -v chromium >/dev/null || missing+=(chromium)
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
    echo "bootstrap: need root to install ${missing[*]} (apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- 2. Python environment ---------------------------------------------------------------------
PY="${CHEF_PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY="$cand"; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "bootstrap: Python 3.11 is required (torch 2.13.0 CPU wheel and the ROS Kilted wheels are cp311)" >&2
  exit 1
fi
REQ_HASH="$(hash_of requirements.txt requirements-nodeps.txt constraints.txt scripts/bootstrap.sh)"
STAMP=.venv/.chef-requirements
if [ "$FORCE" = 1 ] || [ ! -x .venv/bin/python ] || [ "$(cat $STAMP 2>/dev/null)" != "$REQ_HASH" ]; then
  say "creating .venv with pinned packages (first time: ~2-3 minutes)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade 'pip>=24'
  .venv/bin/python -m pip install -q -r requirements.txt -c constraints.txt
  .venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
  echo "$REQ_HASH" > "$STAMP"
fi

# --- 3. colcon build ---------------------------------------------------------------------------
# With --symlink-install, edits to Python sources need no rebuild; manifests, entry points and the
# set of installed data files do.
BUILD_HASH="$( (find src launch config -type f -o -type l | LC_ALL=C sort; \
                cat src/*/setup.py src/*/setup.cfg src/*/package.xml colcon.meta) | sha256sum | cut -c1-16)"
BSTAMP=install/.chef-build
if [ "$FORCE" = 1 ] || [ ! -f install/setup.bash ] || [ "$(cat $BSTAMP 2>/dev/null)" != "$BUILD_HASH" ]; then
  say "building the workspace (colcon build --symlink-install)"
  # shellcheck disable=SC1091
  source .venv/bin/activate
  LOG="$(mktemp /tmp/chef-colcon-build.XXXXXX.log)"
  # one build at a time per checkout (parallel shells, CI retries)
  ( flock 9
    colcon build --symlink-install --event-handlers console_cohesion- summary- >"$LOG" 2>&1
  ) 9>"$ROOT/.colcon-build.lock" || { cat "$LOG" >&2; echo "bootstrap: colcon build failed" >&2; exit 1; }
  echo "$BUILD_HASH" > "$BSTAMP"
fi
say "ready"
