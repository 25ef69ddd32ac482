"""Offline install: `make bundle` (local/bundle.py) writes a folder that a fresh venv installs from with no index.

A subset keeps it short: kaldialign (a compiled wheel, chosen by Python and platform tags) and connection_pool
(one of snakemake's dependencies that publishes only a source archive, which the bundle turns into a wheel).
Needs the package registry to write the bundle; the install itself sees nothing but the bundle.
"""

import os
import platform
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUBSET = ["kaldialign==0.12.0", "connection_pool==0.0.3"]


def test_a_fresh_venv_installs_from_the_bundle_alone(tmp_path: Path):
    bundle = tmp_path / "bundle"
    python_version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    made = subprocess.run([sys.executable, str(ROOT / "local/bundle.py"), "--python-version", python_version,
                           "--platform", f"manylinux_2_28_{platform.machine()}", "--out", str(bundle),
                           "--only", *SUBSET], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-3000:]
    names = sorted(p.name for p in bundle.iterdir())
    assert any(n.startswith("kaldialign-0.12.0-") for n in names), names
    assert "connection_pool-0.0.3-py3-none-any.whl" in names, names
    assert not any(n.startswith("torch-") for n in names), names  # the placeholder never lands
    assert not (tmp_path / ".bundle.partial").exists()

    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=True)
    # No configuration file (this machine's names local wheel folders and indexes): the bundle alone.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
    installed = subprocess.run([str(fresh / "bin/python"), "-m", "pip", "install", "--no-index", "--find-links",
                                str(bundle), *SUBSET], capture_output=True, text=True, env=env, timeout=300)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    imported = subprocess.run([str(fresh / "bin/python"), "-c", "import kaldialign, connection_pool; "
                               "print(kaldialign.edit_distance('abc', 'abd')['total'])"],
                              capture_output=True, text=True, env=env, timeout=60)
    assert imported.stdout.strip() == "1", imported.stderr
