"""Changing units.phone_set reruns the units stage and what follows it, never the corpus preparation: the
manifests keep TIMIT's 61 labels and the units choose the training set from them."""

import re
import subprocess
from pathlib import Path

from lhotse import SupervisionSet

from asrkit.data.lang import TokenTable
from timit_skeleton import write_timit_skeleton

RUN_SH = Path(__file__).resolve().parents[2] / "recipes" / "timit" / "run.sh"
PLAN = re.compile(r"^(?:localrule|rule) (\w+):", re.M)


def run_stages(config: Path, work: Path, *snakemake: str) -> subprocess.CompletedProcess:
    """Stages 1-3 (manifests, features, units) of the TIMIT recipe."""
    return subprocess.run([str(RUN_SH), "--config", str(config), "--dir", str(work), "--stop-stage", "3",
                           "--cores", "2", "--", *snakemake], capture_output=True, text=True, timeout=300)


def test_changing_the_phone_set_keeps_the_manifests(tmp_path):
    corpus = write_timit_skeleton(tmp_path / "corpus", num_train_speakers=2, num_other_test_speakers=0,
                                  num_dev_speakers=1, num_test_speakers=1, utterances=["SI943", "SX43"])
    config = tmp_path / "extra.yaml"
    settings = f"corpus_dir: {corpus}\ndata: {{require_standard_sizes: false}}\nunits: {{phone_set: %d}}\n"
    config.write_text(settings % 60)
    work = tmp_path / "work"
    first = run_stages(config, work)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert len(TokenTable.load(work / "data/lang/tokens.txt")) == 61
    supervisions = SupervisionSet.from_file(work / "data/manifests/timit_supervisions_train.jsonl.gz")
    assert all("q" in [item.symbol for item in s.alignment["phone"]] for s in supervisions)

    config.write_text(settings % 61)
    dry = run_stages(config, work, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    planned = set(PLAN.findall(dry.stdout))
    assert "lang" in planned and not planned & {"manifests", "features", "feature_stats"}, planned
    assert "--units.phone_set 61" in dry.stdout
