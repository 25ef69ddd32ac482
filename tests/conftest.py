import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Recipe-specific scripts live in recipes/<name>/local (Kaldi style); tests import them from there.
sys.path.insert(0, str(ROOT / "recipes" / "timit" / "local"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
# Appended, not inserted: TIMIT's local/ comes first for the module names both recipes have (make_demo_corpus).
sys.path.append(str(ROOT / "recipes" / "librispeech" / "local"))
