import sys
from pathlib import Path

import pytest
from lhotse import CutSet

ROOT = Path(__file__).resolve().parents[1]
# Recipe-specific scripts live in recipes/<name>/local (Kaldi style); tests import them from there.
sys.path.insert(0, str(ROOT / "recipes" / "timit" / "local"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
# Appended, not inserted: TIMIT's local/ comes first for the module names both recipes have (make_demo_corpus).
sys.path.append(str(ROOT / "recipes" / "librispeech" / "local"))

from asrkit.data.features import compute_features, compute_global_stats  # noqa: E402  (after the paths above)
from asrkit.data.corpus import write_manifests  # noqa: E402
from asrkit.data.lang import prepare_phones  # noqa: E402
from prepare_timit import standard_sets  # noqa: E402
from timit_skeleton import FEATURES, write_timit_skeleton  # noqa: E402


@pytest.fixture(scope="module")
def skeleton(tmp_path_factory) -> Path:
    """Manifests, train and dev features, statistics and lang of a small skeleton corpus (32 + 8 utterances of
    0.3 s), for the tests that run single stage processes."""
    root = tmp_path_factory.mktemp("skeleton")
    corpus = write_timit_skeleton(root / "corpus", num_train_speakers=4, num_other_test_speakers=0,
                                  num_dev_speakers=1, num_test_speakers=1)
    write_manifests(standard_sets(corpus), root / "manifests", "timit")
    for split in ("train", "dev"):
        compute_features(root / f"manifests/timit_recordings_{split}.jsonl.gz",
                         root / f"manifests/timit_supervisions_{split}.jsonl.gz",
                         root / f"features/cuts_{split}.jsonl.gz", root / f"features/feats_{split}", FEATURES)
    compute_global_stats(CutSet.from_file(root / "features/cuts_train.jsonl.gz"), FEATURES, root / "features/stats.pt")
    prepare_phones(root / "lang", 60)
    return root
