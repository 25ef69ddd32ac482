#!/usr/bin/env bash
# Installs everything asrkit needs into $VENV (default ./.venv; idempotent: a second run takes seconds).
#
#   ASRKIT_TORCH=auto    (default) torch 2.13.0, pinned for reproducibility: its CUDA build where nvidia-smi
#                        lists a GPU, else its CPU build; the dependencies at the versions of local/constraints.txt
#   ASRKIT_TORCH=cpu|cuda  torch 2.13.0, that build, whatever the machine has
#   ASRKIT_TORCH=system  the torch that $PYTHON already imports (2.4 or later, e.g. a cluster's or a container's):
#                        the venv sees $PYTHON's packages and keeps them; only what is missing is added, pinned
#   ASRKIT_BUNDLE=DIR    no network: every package comes from DIR, a folder that `make bundle` wrote
#   ASRKIT_CUDA_ARCHS    compute capabilities fast_rnnt's CUDA kernels are built for, e.g. "90" or "80 90"
#                        (default: those of the GPUs torch sees); "none" builds it without CUDA
#   PYTHON (python3.11), VENV (.venv), ASRKIT_WHEEL_CACHE (~/.cache/asrkit/wheels)
#
# kaldifeat and fast_rnnt ship only source archives whose cmake downloads pybind11; we build them offline
# against pybind11's source archive and cache the wheels in $ASRKIT_WHEEL_CACHE, keyed by Python, torch and
# torch's CUDA version, because they link against that very torch (kaldifeat refuses to import beside any other).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
TORCH_MODE=${ASRKIT_TORCH:-auto}
BUNDLE=${ASRKIT_BUNDLE:-}
TORCH_VERSION=2.13.0
MIN_SYSTEM_TORCH=2.4
KALDIFEAT_VERSION=1.24
FAST_RNNT_VERSION=1.3
PYBIND11_VERSION=3.0.4
log() { echo "[install] $*" >&2; }
die() { echo "[install] error: $*" >&2; exit 1; }

case "$TORCH_MODE" in auto|cpu|cuda|system) ;; *) die "ASRKIT_TORCH=$TORCH_MODE: expected auto, cpu, cuda or system" ;; esac
if [ -n "$BUNDLE" ]; then
  [ -d "$BUNDLE" ] || die "ASRKIT_BUNDLE=$BUNDLE: no such folder (write one with: make bundle PYTHON_VERSION=...)"
  BUNDLE=$(cd "$BUNDLE" && pwd)
fi

# Nothing to do when this venv was set up by this very installer, for these files and this mode, and over the
# torch it has now: kaldifeat and fast_rnnt are built against one torch (with ASRKIT_TORCH=system, the system's
# may change under the venv) and fail to import beside another.
STAMP="$VENV/.asrkit-installed"
fingerprint() {  # what the stamp holds: these files, the mode, and the torch version that $VENV has now
  local torch_version
  torch_version=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null) \
    || torch_version=none
  (cat local/install.sh pyproject.toml local/constraints.txt; echo "$TORCH_MODE ${ASRKIT_CUDA_ARCHS:-} torch $torch_version") \
    | sha256sum | cut -d' ' -f1
}
fingerprint=$(fingerprint)
if [ "${1:-}" = --fingerprint ]; then  # what the stamp holds when the venv is up to date (for tests)
  echo "$fingerprint"
  exit 0
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$fingerprint" ]; then
  log "up to date ($VENV)"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  if [ "$TORCH_MODE" = system ]; then
    # Without ensurepip (Debian's python3 without python3-venv, venvs made by uv) the venv uses $PYTHON's pip.
    "$PYTHON" -m venv --system-site-packages "$VENV" 2>/dev/null \
      || { "$PYTHON" -m pip --version >/dev/null && log "no ensurepip for $PYTHON: the venv uses its pip" \
           && rm -rf "$VENV" && "$PYTHON" -m venv --system-site-packages --without-pip "$VENV"; } \
      || die "cannot make a venv with $PYTHON (neither ensurepip nor pip)"
    # --system-site-packages shows the base interpreter's packages. When $PYTHON is itself a venv's (as in
    # many GPU containers), its torch is in that venv: a .pth file adds its folders, after the new venv's own.
    parent=$("$PYTHON" -c 'import site, sys; print("\n".join(site.getsitepackages()) if sys.prefix != sys.base_prefix else "")')
    if [ -n "$parent" ]; then
      "$VENV/bin/python" -c 'import sys, sysconfig; open(sysconfig.get_paths()["purelib"] + "/asrkit-system-packages.pth", "w").write(sys.argv[1] + "\n")' "$parent"
      log "the venv also sees the packages of $PYTHON's own venv: $(echo "$parent" | tr '\n' ' ')"
    fi
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"
PIP=($PY -m pip --disable-pip-version-check -q)
if [ -n "$BUNDLE" ]; then  # for every pip command below, the build isolation's too
  export PIP_NO_INDEX=1 PIP_FIND_LINKS=$BUNDLE
  log "offline: packages from $BUNDLE only"
fi

# The versions to install: all of local/constraints.txt, or with ASRKIT_TORCH=system only the lines for
# packages the environment lacks (the ones it has stay as they are, if pyproject.toml's ranges accept them).
CONSTRAINTS=$VENV/asrkit-constraints.txt
if [ "$TORCH_MODE" = system ]; then
  $PY - local/constraints.txt > "$CONSTRAINTS" <<'EOF'
import importlib.metadata, re, sys
for line in open(sys.argv[1]):
    name = re.match(r"[A-Za-z0-9_.-]*", line.strip()).group()
    if not name:
        continue
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        print(line.strip())
EOF
else
  cp local/constraints.txt "$CONSTRAINTS"
fi

# torch
if [ "$TORCH_MODE" = system ]; then
  $PY - "$MIN_SYSTEM_TORCH" <<'EOF' || die "ASRKIT_TORCH=system needs a torch that $PYTHON imports (see above); install one, or leave ASRKIT_TORCH unset for the pinned torch"
import sys
try:
    import torch
except ImportError as error:
    sys.exit(f"[install] error: {sys.executable} cannot import torch ({error})")
version = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
minimum = tuple(int(x) for x in sys.argv[1].split("."))
if version < minimum:
    sys.exit(f"[install] error: torch {torch.__version__} at {torch.__file__} is older than {sys.argv[1]}")
EOF
  log "torch: the system's, $($PY -c 'import torch; print(torch.__version__, "at", torch.__file__.rsplit("/", 2)[0])')"
else
  build=$TORCH_MODE
  if [ "$build" = auto ]; then
    build=cpu
    if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then build=cuda; fi
  fi
  have=$($PY -c 'import torch; print(torch.__version__.split("+")[0], "cuda" if torch.version.cuda else "cpu")' 2>/dev/null || true)
  if [ "$have" != "$TORCH_VERSION $build" ]; then
    if [ "$build" = cuda ]; then
      log "installing torch $TORCH_VERSION, CUDA build (ASRKIT_TORCH=$TORCH_MODE; ASRKIT_TORCH=cpu for the CPU build)"
      "${PIP[@]}" install "torch==$TORCH_VERSION"  # PyPI's Linux wheels are CUDA builds
    else
      log "installing torch $TORCH_VERSION, CPU build (ASRKIT_TORCH=$TORCH_MODE; ASRKIT_TORCH=cuda for the CUDA build)"
      # PyPI has no CPU build for Linux; PyTorch's CPU index has. Try the sources pip already knows first (a
      # local wheel folder, a bundle), so that machines without internet need no other index.
      "${PIP[@]}" install "torch==$TORCH_VERSION+cpu" 2>/dev/null \
        || { [ -z "$BUNDLE" ] && "${PIP[@]}" install "torch==$TORCH_VERSION+cpu" --extra-index-url https://download.pytorch.org/whl/cpu; } \
        || die "no CPU build of torch $TORCH_VERSION found${BUNDLE:+ in $BUNDLE (put its wheel there, or use ASRKIT_TORCH=system)}"
    fi
  fi
fi

# What torch is this: the wheel cache's key, and whether fast_rnnt gets CUDA kernels.
read -r TORCH_FULL TORCH_CUDA PY_TAG DETECTED_ARCHS < <($PY -c '
import sys, torch
archs = sorted({f"{a}{b}" for a, b in (torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count()))}) \
    if torch.cuda.is_available() else []
print(torch.__version__.split("+")[0], torch.version.cuda or "none", f"cp{sys.version_info[0]}{sys.version_info[1]}",
      ",".join(archs) or "none")')
[ -n "${DETECTED_ARCHS:-}" ] || die "$PY could not tell torch's version (see above)"
KEY=torch$TORCH_FULL-$PY_TAG
[ "$TORCH_CUDA" = none ] || KEY=$KEY-cuda$TORCH_CUDA
CACHE=${ASRKIT_WHEEL_CACHE:-$HOME/.cache/asrkit/wheels}/$KEY
mkdir -p "$CACHE"

# fast_rnnt's RNN-T losses run on CUDA tensors only when it is built with CUDA: that needs a CUDA torch,
# nvcc of the same CUDA major version, and the GPUs' compute capabilities (building for one takes a minute
# with all cores; for all of them, many). Against a CUDA torch both extensions need CUDA's headers anyway
# (torch's cmake files look for them), in the toolkit holding nvcc: $CUDA_HOME, /usr/local/cuda, or nvcc's.
ARCHS=${ASRKIT_CUDA_ARCHS:-${DETECTED_ARCHS//,/ }}
FT_CUDA=off
CUDA_ARGS=
if [ "$TORCH_CUDA" = none ]; then
  log "fast_rnnt: CPU build (torch $TORCH_FULL has no CUDA)"
else
  CUDA_ROOT=${CUDA_HOME:-}
  [ -n "$CUDA_ROOT" ] || { [ -x /usr/local/cuda/bin/nvcc ] && CUDA_ROOT=/usr/local/cuda; } || true
  # nvcc on PATH may be a wrapper script elsewhere (cmake would look for the headers beside it): ask it
  [ -n "$CUDA_ROOT" ] || { command -v nvcc >/dev/null && CUDA_ROOT=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")"); } || true
  NVCC=$CUDA_ROOT/bin/nvcc
  [ -n "$CUDA_ROOT" ] && [ -x "$NVCC" ] && [ -f "$CUDA_ROOT/include/cuda_runtime.h" ] || die "torch $TORCH_FULL is a CUDA \
$TORCH_CUDA build: building kaldifeat and fast_rnnt against it needs CUDA $TORCH_CUDA's nvcc and headers, and none were found \
(set CUDA_HOME to the toolkit's folder, or put its bin/ on PATH)"
  nvcc_version=$("$NVCC" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
  [ "${nvcc_version%%.*}" = "${TORCH_CUDA%%.*}" ] || die "torch is built with CUDA $TORCH_CUDA but $NVCC is CUDA $nvcc_version: \
their major versions must match. Set CUDA_HOME to a CUDA ${TORCH_CUDA%%.*} toolkit."
  CUDA_ARGS="-DCUDA_TOOLKIT_ROOT_DIR=$CUDA_ROOT -DCMAKE_CUDA_COMPILER=$NVCC"
  if ! ls "$CUDA_ROOT"/lib64/libnvrtc.so* >/dev/null 2>&1; then
    # A toolkit made of NVIDIA's pip packages may lack nvrtc, which torch's cmake files link: use the one
    # that torch itself loads, from its nvidia-* packages.
    nvrtc=$($PY -c 'import glob, nvidia; print(next(iter(sorted(f for d in nvidia.__path__ for f in glob.glob(d + "/**/libnvrtc.so*", recursive=True))), ""))' 2>/dev/null || true)
    [ -n "$nvrtc" ] || die "$CUDA_ROOT has no libnvrtc.so, and torch's nvidia packages have none either: install CUDA's nvrtc"
    CUDA_ARGS="$CUDA_ARGS -DCUDA_nvrtc_LIBRARY=$nvrtc"
  fi
  if [ "$ARCHS" = none ]; then
    log "fast_rnnt: CPU build (no GPU visible and ASRKIT_CUDA_ARCHS unset or none; set ASRKIT_CUDA_ARCHS=\"90\" to build for a GPU elsewhere)"
  else
    FT_CUDA=on
    log "fast_rnnt: CUDA build for compute capability $ARCHS (nvcc $nvcc_version in $CUDA_ROOT, torch CUDA $TORCH_CUDA)"
  fi
fi
FT_CACHE=$CACHE
[ "$FT_CUDA" = off ] || FT_CACHE=$CACHE/fast_rnnt-sm${ARCHS// /-}
mkdir -p "$FT_CACHE"

# A package's source archive, unpacked in $work: the bundle's, or downloaded. A bundle's is unpacked as it is:
# pip would first prepare its metadata in an isolated build, which needs build tools the bundle need not hold
# (pybind11 3's is scikit-build-core).
fetch_source() {  # fetch_source NAME VERSION WORK
  local archive
  if [ -n "$BUNDLE" ]; then
    archive=$(ls "$BUNDLE"/$1-$2.tar.gz "$BUNDLE"/${1//_/-}-$2.tar.gz 2>/dev/null | head -1) || true
    [ -n "$archive" ] || die "$BUNDLE has no source archive of $1 $2 ($1-$2.tar.gz): write the bundle again with make bundle"
  else
    "${PIP[@]}" download --no-deps --no-binary :all: "$1==$2" -d "$3"
    archive=$3/$1-$2.tar.gz
  fi
  tar xzf "$archive" -C "$3"
  [ -d "$3/$1-$2" ] || die "$archive does not unpack to $1-$2/"
}

build_wheel() {  # build_wheel NAME VERSION CACHE_DIR CMAKE_ENV_VAR MAKE_ENV_VAR EXTRA_CMAKE_ARGS [ARCHS]
  local name=$1 version=$2 cache=$3 cmake_var=$4 make_var=$5 extra=$6 archs=${7:-}
  if ls "$cache"/${name}-${version}-*.whl >/dev/null 2>&1; then return; fi
  log "building $name $version from source (offline; a few minutes, once) -> $cache"
  "${PIP[@]}" install -c "$CONSTRAINTS" setuptools wheel cmake  # build tools for the source archives
  local work; work=$(mktemp -d)
  fetch_source pybind11 "$PYBIND11_VERSION" "$work"
  fetch_source "$name" "$version" "$work"
  if [ -n "$archs" ]; then
    # fast_rnnt's CMakeLists.txt builds for a fixed list of architectures from 3.5 on, which CUDA 12.9+
    # rejects: build for the asked ones only (also much faster).
    local cmakelists="$work/$name-$version/CMakeLists.txt"
    grep -q 'set(FT_COMPUTE_ARCH_CANDIDATES 35 50 60 61 70 75)' "$cmakelists" \
      || die "$cmakelists: its architecture list is not the one this installer replaces (fast_rnnt changed?)"
    sed -i -e "s/set(FT_COMPUTE_ARCH_CANDIDATES 35 50 60 61 70 75)/set(FT_COMPUTE_ARCH_CANDIDATES $archs)/" \
      -e '/list(APPEND FT_COMPUTE_ARCH_CANDIDATES 80 86)/d' "$cmakelists"
  fi
  local include; include=$($PY -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  # C++17, unless torch's headers demand C++20 (newer releases do)
  local std; std=$($PY -c 'import os, torch; h = os.path.join(os.path.dirname(torch.__file__), "include/torch/csrc/api/include/torch/all.h"); print(20 if "C++20 or later" in open(h).read() else 17)')
  local args="-DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD=$std \
-DFETCHCONTENT_SOURCE_DIR_PYBIND11=$work/pybind11-$PYBIND11_VERSION -DFETCHCONTENT_FULLY_DISCONNECTED=ON \
-DPYTHON_INCLUDE_DIRS=$include $extra"
  # Their setup.py runs make (not ninja): all cores.
  # torch's cmake files add -gencode flags of their own, for TORCH_CUDA_ARCH_LIST (e.g. "9.0"; by default a
  # list from 5.0 on that CUDA 13 rejects)
  local build_env=("$cmake_var=$args" "$make_var=-j$(nproc)")
  if [ "$ARCHS" != none ]; then
    build_env+=("TORCH_CUDA_ARCH_LIST=$(echo "$ARCHS" | sed -E 's/([0-9]+)([0-9])/\1.\2/g; s/ /;/g')")
  fi
  # the cmake installed above (a recent one knows recent nvcc's C++ dialects), not whichever is first on PATH
  build_env+=("PATH=$($PY -c 'import cmake; print(cmake.CMAKE_BIN_DIR)'):$PATH")
  env "${build_env[@]}" \
    "${PIP[@]}" wheel --no-build-isolation --no-deps "$work/$name-$version" -w "$work/wheels"
  # Rename into place so an interrupted build never leaves a wheel that looks finished.
  for whl in "$work"/wheels/*.whl; do cp "$whl" "$cache/.tmp.$(basename "$whl")" && mv "$cache/.tmp.$(basename "$whl")" "$cache/$(basename "$whl")"; done
  rm -rf "$work"
}

if [ "$FT_CUDA" = on ]; then
  build_wheel fast_rnnt "$FAST_RNNT_VERSION" "$FT_CACHE" FT_CMAKE_ARGS FT_MAKE_ARGS \
    "-DFT_BUILD_TESTS=OFF -DFT_WITH_CUDA=ON $CUDA_ARGS" "$ARCHS"
else
  build_wheel fast_rnnt "$FAST_RNNT_VERSION" "$FT_CACHE" FT_CMAKE_ARGS FT_MAKE_ARGS "-DFT_BUILD_TESTS=OFF -DFT_WITH_CUDA=OFF $CUDA_ARGS"
fi
# kaldifeat has no CUDA code of its own (its features are torch operations, which run wherever their
# tensors are), and asrkit computes features on the CPU anyway: one build serves CPU and GPU.
build_wheel kaldifeat "$KALDIFEAT_VERSION" "$CACHE" KALDIFEAT_CMAKE_ARGS KALDIFEAT_MAKE_ARGS "$CUDA_ARGS"
"${PIP[@]}" install --no-deps --force-reinstall "$CACHE"/kaldifeat-*.whl "$FT_CACHE"/fast_rnnt-*.whl
[ "$($PY -c 'import fast_rnnt; print("on" if fast_rnnt.with_cuda() else "off")')" = "$FT_CUDA" ] \
  || die "fast_rnnt from $FT_CACHE is not the build asked for (CUDA $FT_CUDA): remove that folder and rerun"

log "installing asrkit and its dependencies"
"${PIP[@]}" install -c "$CONSTRAINTS" -e ".[dev,bench]"
fingerprint > "$STAMP"  # of the torch installed now
log "done: $($PY -c 'import torch, kaldifeat, fast_rnnt, lhotse; print("torch", torch.__version__, "(CUDA", torch.version.cuda, \
end="), "); print("kaldifeat", kaldifeat.__version__, "fast_rnnt", fast_rnnt.__version__, "CUDA" if fast_rnnt.with_cuda() else "CPU", \
"build, lhotse", lhotse.__version__)')"
