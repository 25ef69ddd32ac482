#!/usr/bin/env bash
# Installs everything asrkit needs into ./.venv (idempotent; a second run takes seconds).
#
# kaldifeat and fast_rnnt ship only source archives whose cmake downloads pybind11; we build them offline
# against pybind11's source archive from PyPI and cache the wheels in $ASRKIT_WHEEL_CACHE, keyed by torch
# version and Python, because kaldifeat refuses to import beside any other torch.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
TORCH_VERSION=2.13.0
KALDIFEAT_VERSION=1.24
FAST_RNNT_VERSION=1.3
PYBIND11_VERSION=3.0.4
log() { echo "[install] $*" >&2; }

# Nothing to do when this venv was set up by this very installer for this very pyproject.toml.
STAMP="$VENV/.asrkit-installed"
fingerprint=$(cat local/install.sh pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$fingerprint" ]; then
  log "up to date ($VENV)"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP="$PY -m pip --disable-pip-version-check -q"

if ! $PY -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  log "installing torch $TORCH_VERSION (CPU build)"
  $PIP install "torch==$TORCH_VERSION"
fi

PY_TAG=$($PY -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
CACHE=${ASRKIT_WHEEL_CACHE:-$HOME/.cache/asrkit/wheels}/torch$TORCH_VERSION-$PY_TAG
mkdir -p "$CACHE"

build_wheel() {  # build_wheel NAME VERSION CMAKE_ENV_VAR EXTRA_CMAKE_ARGS MAKE_ENV_VAR
  local name=$1 version=$2 cmake_var=$3 extra=$4 make_var=$5
  if ls "$CACHE"/${name}-${version}-*.whl >/dev/null 2>&1; then return; fi
  log "building $name $version from source (offline; a few minutes, once)"
  $PIP install setuptools wheel cmake  # build tools for the source archive
  local work; work=$(mktemp -d)
  $PIP download --no-deps --no-binary :all: "pybind11==$PYBIND11_VERSION" -d "$work"
  tar xzf "$work/pybind11-$PYBIND11_VERSION.tar.gz" -C "$work"
  local include; include=$($PY -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  local args="-DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD=17 \
-DFETCHCONTENT_SOURCE_DIR_PYBIND11=$work/pybind11-$PYBIND11_VERSION -DFETCHCONTENT_FULLY_DISCONNECTED=ON \
-DPYTHON_INCLUDE_DIRS=$include $extra"
  env "$cmake_var=$args" "$make_var=-j$(nproc)" \
    $PIP wheel --no-build-isolation --no-deps --no-binary "$name" "$name==$version" -w "$work/wheels"
  # Rename into place so an interrupted build never leaves a wheel that looks finished.
  for whl in "$work"/wheels/*.whl; do cp "$whl" "$CACHE/.tmp.$(basename "$whl")" && mv "$CACHE/.tmp.$(basename "$whl")" "$CACHE/$(basename "$whl")"; done
  rm -rf "$work"
}

build_wheel kaldifeat "$KALDIFEAT_VERSION" KALDIFEAT_CMAKE_ARGS "" KALDIFEAT_MAKE_ARGS
build_wheel fast_rnnt "$FAST_RNNT_VERSION" FT_CMAKE_ARGS "-DFT_BUILD_TESTS=OFF -DFT_WITH_CUDA=OFF" FT_MAKE_ARGS
$PIP install --no-deps "$CACHE"/kaldifeat-*.whl "$CACHE"/fast_rnnt-*.whl

log "installing asrkit and its pinned dependencies"
$PIP install -e ".[dev,bench]"
echo "$fingerprint" > "$STAMP"
log "done: $($PY -c 'import torch, kaldifeat, fast_rnnt, lhotse; print("torch", torch.__version__, "kaldifeat", kaldifeat.__version__, "lhotse", lhotse.__version__)')"
