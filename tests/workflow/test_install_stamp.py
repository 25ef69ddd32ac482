"""local/install.sh does nothing on a second run, unless the venv's torch has changed under it.

kaldifeat and fast_rnnt are built against one torch and fail to import beside another (undefined symbols). With
ASRKIT_TORCH=system the venv sees the system's torch, which a cluster's module system can change at any time:
the install stamp holds that torch's version, so a changed torch reinstalls instead of "up to date". A venv with
a stand-in torch (its metadata alone) shows it without building anything.
"""

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def stand_in_torch(environment: Path, version: str) -> None:
    """Make ``environment``'s installed torch (as importlib.metadata sees it) ``version``."""
    site = Path(sysconfig.get_paths(vars={"base": str(environment), "platbase": str(environment)})["purelib"])
    for old in site.glob("torch-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    info = site / f"torch-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")


def install(environment: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VENV": str(environment), "ASRKIT_TORCH": "system", "PYTHON": sys.executable}
    return subprocess.run(["bash", str(ROOT / "local/install.sh"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_a_changed_torch_is_no_longer_up_to_date(tmp_path: Path):
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=False, system_site_packages=False)
    stand_in_torch(environment, "2.11.0")
    first = install(environment, "--fingerprint").stdout.strip()
    (environment / ".asrkit-installed").write_text(first + "\n")
    unchanged = install(environment)
    assert unchanged.returncode == 0 and "up to date" in unchanged.stderr, unchanged.stderr

    stand_in_torch(environment, "2.12.0")
    assert install(environment, "--fingerprint").stdout.strip() != first
    changed = install(environment)
    # It installs again: here it stops at once, since the stand-in torch has no module to import.
    assert "up to date" not in changed.stderr
    assert changed.returncode != 0 and "cannot import torch" in changed.stderr, changed.stderr[-2000:]
