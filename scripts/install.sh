#!/usr/bin/env bash
# Installs Talkwire into ./.venv (Python >= 3.11). With --test also installs the test peers
# (Debian packages: chromium, espeak-ng, sox, sipp, baresip, postgresql, redis-server, kamailio) and the test extras.
#
# llama-cpp-python has no wheel on PyPI. We build it once, portable (no -march=native, no llava),
# into a wheel cache keyed by version and flags, so a later install reuses exactly that build and
# never a native build that pip's own cache might hold.
set -euo pipefail
cd "$(dirname "$0")/.."

with_test=0
[ "${1:-}" = "--test" ] && with_test=1

PY=${PYTHON:-python3}
LLAMA_VERSION=0.3.36
LLAMA_FLAGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF"
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/talkwire/wheels/llama-cpp-python-$LLAMA_VERSION-portable"

if [ "$with_test" = 1 ]; then
  need=()
  for pkg in chromium espeak-ng sox sip-tester baresip-core postgresql redis-server kamailio kamailio-extra-modules; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "==> apt-get install ${need[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip wheel setuptools

if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "==> building llama-cpp-python $LLAMA_VERSION (portable; about 5 minutes on 2 cores, once)"
  mkdir -p "$WHEELS"
  CMAKE_ARGS="$LLAMA_FLAGS" .venv/bin/python -m pip wheel -q --no-deps --no-cache-dir \
    --no-binary llama-cpp-python -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi

extra=""; [ "$with_test" = 1 ] && extra="[test]"
echo "==> pip install -e .$extra"
.venv/bin/python -m pip install -q --find-links "$WHEELS" -e ".$extra"
echo "==> installed: $(.venv/bin/talkwire --version 2>/dev/null || echo talkwire)"
