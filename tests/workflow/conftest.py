from pathlib import Path

import pytest

from tiny_recipe import TINY, Recipe


@pytest.fixture(scope="session")
def finished_tiny_run(tmp_path_factory) -> Path:
    """One finished, uninterrupted tiny run (``work``, its config beside it as ``tiny.yaml``), shared by the fault
    and stale-result tests: they read it, or damage a copy of it, never the run itself."""
    root = tmp_path_factory.mktemp("finished")
    config = root / "tiny.yaml"
    config.write_text(TINY)
    result = Recipe(root / "work", config).run()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root
