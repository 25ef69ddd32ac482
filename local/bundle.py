"""Write a folder of every wheel and source archive asrkit needs on a machine without internet (``make bundle``).

Usage: python local/bundle.py --python-version 3.12 [--platform manylinux_2_28_x86_64] [--out bundle]
       [--torch-version 2.11.0] [--have NAMES.txt] [--only NAME ... [--with-sources]]

Then, on the target: ``ASRKIT_BUNDLE=bundle bash local/install.sh`` (pip --no-index --find-links bundle).

What goes in: asrkit's dependencies with their extras dev and bench, at local/constraints.txt's versions, and
everything they need, as wheels for that Python and platform; the build tools setuptools, wheel and cmake; the source
archives of kaldifeat, fast_rnnt and pybind11 (local/install.sh builds those two there, against the target's
torch). Pure-Python packages that publish only a source archive are built into wheels here.

torch is left out: it is the target's own (``ASRKIT_TORCH=system``), or its wheel is put in the folder by hand
(a CUDA build with its NVIDIA libraries is several GB). A placeholder of ``--torch-version`` stands in for it
while pip resolves, so that pip does not fetch it; it is not written.

``--have`` names packages the target already has (one a line; ``pip list --format=freeze`` output will do):
their wheels over 1 MiB are left out (pip keeps what the target has when it fits asrkit's ranges); smaller
ones stay, as what pip falls back on when the target's version does not fit.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import List, Set

ROOT = Path(__file__).resolve().parents[1]
if sys.version_info < (3, 11):
    raise SystemExit("error: local/bundle.py needs Python 3.11 or later (tomllib); the target's Python may be older")
import tomllib  # noqa: E402  (after the version check)

BUILD_TOOLS = ["setuptools", "wheel", "cmake"]
#: compiled dependencies that publish only a source archive: the bundle holds the archive, and pip builds it on the
#: target with the bundle's build tools (and the target's C++ compiler), as ``make install`` does online
BUILT_ON_TARGET = ["kenlm"]
KEEP_SMALL_BYTES = 1 << 20  # --have: wheels up to this size stay in the bundle


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installer_pin(variable: str) -> str:
    """A version that local/install.sh pins, e.g. ``KALDIFEAT_VERSION=1.24``: one place says it."""
    match = re.search(rf"^{variable}=(\S+)$", (ROOT / "local/install.sh").read_text(), re.M)
    if match is None:
        raise SystemExit(f"error: local/install.sh: no line {variable}=...")
    return match.group(1)


def requirements() -> List[str]:
    """asrkit's dependencies and those of its extras, as pyproject.toml lists them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]


def platforms(platform: str) -> List[str]:
    """pip matches platform tags exactly: a manylinux_2_N tag stands for every glibc up to 2.N."""
    match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", platform)
    if match is None:
        return [platform]
    newest, arch = int(match.group(1)), match.group(2)
    return [f"manylinux_2_{n}_{arch}" for n in range(newest, 16, -1)] + [f"manylinux2014_{arch}",
                                                                         f"manylinux1_{arch}"]


def placeholder_torch(folder: Path, version: str) -> Path:
    """An empty ``torch`` wheel of ``version`` with no requirements, and a constraints file that allows only it:
    it stands for the target's torch in resolution (the local version label keeps pip off the real ones)."""
    version = f"{version}+placeholder"
    (folder / "torch-constraint.txt").write_text(f"torch=={version}\n")
    dist = f"torch-{version}.dist-info"
    with zipfile.ZipFile(folder / f"torch-{version}-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
        whl.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: asrkit-bundle\nRoot-Is-Purelib: true\n"
                                      "Tag: py3-none-any\n")
        whl.writestr(f"{dist}/RECORD", "")
    return folder / "torch-constraint.txt"


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True)


def download_wheels(reqs: List[str], out: Path, placeholders: Path, torch_constraint: Path, python_version: str,
                    platform: str) -> None:
    """Wheels of ``reqs`` and all they need for the target into ``out``; a pure-Python package with no wheel
    is built into one here (pip cannot take source archives for another platform), then pip tries again."""
    target = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for tag in platforms(platform) + ["any"]:
        target += ["--platform", tag]
    built: Set[str] = set()
    while True:
        result = pip("download", *target, "--find-links", str(placeholders), "--find-links", str(out),
                     "-c", str(ROOT / "local/constraints.txt"), "-c", str(torch_constraint), "-d", str(out), *reqs)
        if result.returncode == 0:
            return
        missing = re.search(r"No matching distribution found for (\S+)", result.stderr)
        if missing is None or missing.group(1) in built:
            raise SystemExit(f"error: pip download failed:\n{result.stderr[-3000:]}")
        requirement = missing.group(1)
        built.add(requirement)
        print(f"[bundle] {requirement}: no wheel for the target, building one from its source archive", file=sys.stderr)
        wheel = pip("wheel", "--no-deps", "--no-binary", ":all:", requirement, "-w", str(out))
        made = [p for p in out.glob("*.whl") if normalise(p.name.split("-")[0]) == normalise(re.split(r"[<>=!~; ]", requirement)[0])]
        if wheel.returncode != 0 or not made or not all(p.name.endswith("-py3-none-any.whl") for p in made):
            raise SystemExit(f"error: {requirement} has no wheel for the target and does not build into a "
                             f"pure-Python one here:\n{wheel.stderr[-3000:]}")


def download_sources(names: List[str], out: Path, *options: str) -> None:
    """Source archives (no dependencies): what local/install.sh builds on the target."""
    result = pip("download", "--no-deps", "--no-binary", ":all:", *options, "-d", str(out), *names)
    if result.returncode != 0:
        raise SystemExit(f"error: pip download of {' '.join(names)} failed:\n{result.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python-version", required=True, help="the target's Python, e.g. 3.12")
    parser.add_argument("--platform", default="manylinux_2_28_x86_64",
                        help="the target's platform tag (default manylinux_2_28_x86_64: glibc 2.28 or later, x86-64)")
    parser.add_argument("--out", type=Path, default=ROOT / "bundle", help="the folder to write (default bundle/)")
    parser.add_argument("--torch-version", default=installer_pin("TORCH_VERSION"),
                        help="the target's torch, for resolution only (default: the installer's pin)")
    parser.add_argument("--have", type=Path, help="names of packages the target has (see above)")
    parser.add_argument("--only", nargs="+", metavar="REQUIREMENT",
                        help="bundle these requirements instead of asrkit's (and no source archives): for tests")
    parser.add_argument("--with-sources", action="store_true",
                        help="with --only: the source archives and build tools too (what local/install.sh "
                             "builds kaldifeat and fast_rnnt from): for tests")
    args = parser.parse_args()

    out = args.out.resolve()
    partial = out.with_name(f".{out.name}.partial")  # renamed into place once complete
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as placeholders:
        torch_constraint = placeholder_torch(Path(placeholders), args.torch_version)
        reqs = args.only + (BUILD_TOOLS if args.with_sources else []) if args.only else requirements() + BUILD_TOOLS
        on_target = [r for r in reqs if normalise(re.split(r"[<>=!~; \[]", r)[0]) in BUILT_ON_TARGET]
        wheels = [r for r in reqs if r not in on_target]
        if wheels:
            download_wheels(wheels, partial, Path(placeholders), torch_constraint, args.python_version, args.platform)
    if on_target:
        # their build requirements (cmake) would otherwise be built from source too, just to read the metadata
        download_sources(on_target, partial, "--no-build-isolation", "-c", str(ROOT / "local/constraints.txt"))
    for placeholder in partial.glob("torch-*+placeholder-py3-none-any.whl"):
        placeholder.unlink()
    if not args.only or args.with_sources:
        download_sources([f"kaldifeat=={installer_pin('KALDIFEAT_VERSION')}",
                          f"fast_rnnt=={installer_pin('FAST_RNNT_VERSION')}",
                          f"pybind11=={installer_pin('PYBIND11_VERSION')}"], partial)
    if args.have:
        have = {normalise(re.split(r"[=<>~ ]", line.strip())[0]) for line in args.have.read_text().splitlines()
                if line.strip() and not line.startswith("#")}
        for wheel in partial.glob("*.whl"):
            if normalise(wheel.name.split("-")[0]) in have and wheel.stat().st_size > KEEP_SMALL_BYTES:
                wheel.unlink()
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    files = sorted(out.iterdir())
    size = sum(p.stat().st_size for p in files)
    print(f"[bundle] {len(files)} files, {size / 2 ** 20:.1f} MiB -> {out} (Python {args.python_version}, "
          f"{args.platform}; torch not included)")


if __name__ == "__main__":
    main()
