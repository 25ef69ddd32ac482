"""Offline install: `make bundle` (local/bundle.py) writes a folder that a fresh venv installs from with no index.

A subset keeps it short: kaldialign (a compiled wheel, chosen by Python and platform tags) and connection_pool
(one of snakemake's dependencies that publishes only a source archive, which the bundle turns into a wheel),
with the source archives of kaldifeat, fast_rnnt and pybind11 and the build tools. Needs the package registry to
write the bundle; the installs see nothing but the bundle, with pip cut off from this machine's configuration
(its global wheel folder and indexes, which a user's offline node does not have).
"""

import os
import platform
import shutil
import subprocess
import tarfile
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUBSET = ["kaldialign==0.12.0", "connection_pool==0.0.3"]
#: pip as on a user's offline node: no configuration file (this machine's names local wheel folders and indexes)
ISOLATED = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    bundle = tmp_path_factory.mktemp("offline") / "bundle"
    python_version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    made = subprocess.run([sys.executable, str(ROOT / "local/bundle.py"), "--python-version", python_version,
                           "--platform", f"manylinux_2_28_{platform.machine()}", "--out", str(bundle),
                           "--only", *SUBSET, "--with-sources"], capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]
    return bundle


def test_a_fresh_venv_installs_from_the_bundle_alone(bundle: Path, tmp_path: Path):
    names = sorted(p.name for p in bundle.iterdir())
    assert any(n.startswith("kaldialign-0.12.0-") for n in names), names
    assert "connection_pool-0.0.3-py3-none-any.whl" in names, names
    assert {"kaldifeat-1.24.tar.gz", "fast_rnnt-1.3.tar.gz", "pybind11-3.0.4.tar.gz"} <= set(names), names
    assert not any(n.startswith("torch-") for n in names), names  # the placeholder never lands
    assert not (bundle.parent / ".bundle.partial").exists()

    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=True)
    env = ISOLATED
    installed = subprocess.run([str(fresh / "bin/python"), "-m", "pip", "install", "--no-index", "--find-links",
                                str(bundle), *SUBSET], capture_output=True, text=True, env=env, timeout=300)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    imported = subprocess.run([str(fresh / "bin/python"), "-c", "import kaldialign, connection_pool; "
                               "print(kaldialign.edit_distance('abc', 'abd')['total'])"],
                              capture_output=True, text=True, env=env, timeout=60)
    assert imported.stdout.strip() == "1", imported.stderr


@pytest.mark.slow
def test_the_installer_builds_from_the_bundles_source_archives_offline(bundle: Path, tmp_path: Path):
    """local/install.sh with ASRKIT_BUNDLE and pip isolated: the source archives are unpacked as they are (pip,
    asked to prepare pybind11 3's, would need scikit-build-core, which no bundle holds), and fast_rnnt is compiled
    from its archive against pybind11's, offline. kaldifeat's wheel (9 minutes to compile on 2 cores) comes from
    a cache here; its archive is the same kind of file, unpacked by the same step."""
    with tarfile.open(bundle / "kaldifeat-1.24.tar.gz") as archive:
        assert any(name.endswith("kaldifeat-1.24/CMakeLists.txt") for name in archive.getnames())
    torch_tag = subprocess.run([sys.executable, "-c", "import sys, torch; print(f'torch{torch.__version__.split(\"+\")[0]}"
                                "-cp{sys.version_info[0]}{sys.version_info[1]}')"], capture_output=True, text=True,
                               check=True).stdout.strip()
    made = [p for p in (Path.home() / ".cache/asrkit/wheels" / torch_tag).glob("kaldifeat-1.24-*.whl")]
    if not made:
        pytest.skip(f"no cached kaldifeat wheel for {torch_tag} (make install caches one)")
    cache = tmp_path / "wheels"
    (cache / torch_tag).mkdir(parents=True)
    shutil.copy(made[0], cache / torch_tag)
    environment = tmp_path / "venv"
    # over the torch of the test's own environment (ASRKIT_TORCH=system), as on a GPU node with its own torch
    result = subprocess.run(["bash", str(ROOT / "local/install.sh")], cwd=ROOT, capture_output=True, text=True,
                            timeout=1200, env=ISOLATED | {"ASRKIT_BUNDLE": str(bundle), "ASRKIT_TORCH": "system",
                                                          "PYTHON": sys.executable, "VENV": str(environment),
                                                          "ASRKIT_WHEEL_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr[-4000:]
    assert "building fast_rnnt 1.3 from source" in result.stderr and "offline: packages from" in result.stderr
    assert list((cache / torch_tag).glob("fast_rnnt-1.3-*.whl"))
    imported = subprocess.run([str(environment / "bin/python"), "-c", "import fast_rnnt, kaldifeat, asrkit; "
                               "print(fast_rnnt.__file__)"], capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0 and str(environment) in imported.stdout, imported.stderr[-2000:]
