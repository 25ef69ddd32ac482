"""The TIMIT recipe end to end through Snakemake, on a tiny synthetic TIMIT-layout corpus: stage 0 to PER."""

import re
import subprocess
from pathlib import Path

import pytest
from lhotse import SupervisionSet

pytestmark = pytest.mark.slow  # minutes: left out of `make test-fast`

RUN_SH = Path(__file__).resolve().parents[2] / "recipes" / "timit" / "run.sh"

# CTC and PRETRANS (which trains the phone LM and starts from the CTC encoder) cover every stage; TRANS is
# the same code as PRETRANS without the initialisation, and would double the test's time. Two speakers of a held-out
# voice read the held-out set, which is decoded and scored beside dev and test. The models train in bfloat16 mixed
# precision (training.amp), which runs on the CPU as on a GPU: the GPU's mixed-precision path, rehearsed.
TINY = """
corpus_dir: null
models: [ctc, pretrained_transducer]
demo_corpus: {num_train_speakers: 24, num_dev_speakers: 2, num_test_speakers: 3,
              heldout_voices: [awb], num_heldout_speakers: 2}
model: {num_layers: 2, hidden_size: 64, stack_frames: 3, dropout: 0.1}
transducer: {decoder_embedding_dim: 32, decoder_hidden_size: 64, joiner_dim: 64, warmup_batches: 40}
phone_lm: {schedule: fixed, num_epochs: 5}
training: {schedule: fixed, init: torch, grad_clip: 5.0, num_epochs: 10, max_duration: 15, optimizer: adam, lr: 0.004, weight_noise_std: 0.0,
           amp: bfloat16}
decoding: {beams: [4], splits: [dev, test, heldout]}
"""


def run(work: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([str(RUN_SH), "--config", str(config), "--dir", str(work), *args],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def finished_recipe(tmp_path_factory):
    work = tmp_path_factory.mktemp("recipe")
    config = work / "tiny.yaml"
    config.write_text(TINY)
    first_run = run(work, config)
    return work, config, first_run.stdout + first_run.stderr


def test_recipe_reaches_a_phone_error_rate(finished_recipe):
    work, _, _ = finished_recipe
    results = (work / "RESULTS.md").read_text()
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]) for line in results.splitlines()
            if line.startswith("| ") and "---" not in line and "model" not in line}
    assert rows == {("CTC", "greedy"), ("CTC", "prefix beam 4")} | {
        ("PRETRANS", decoding) for decoding in ("greedy", "beam 4", "modified beam 4")}
    for model in ("ctc", "pretrained_transducer"):
        report = (work / f"exp/{model}/decode_greedy/per_test.txt").read_text()
        per = float(re.match(r"%PER (\d+\.\d+) \[ \d+ / \d+, \d+ ins, \d+ del, \d+ sub \]", report).group(1))
        # an empty or constant output scores 100% or more; a model that learnt something scores far below
        assert per < 70, (model, report.splitlines()[0])
        assert (work / f"exp/{model}/training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "dev perplexity" in (work / "logs/5_phone_lm.log").read_text()


def test_results_show_as_soon_as_a_model_is_scored_and_stage_times_at_the_end(finished_recipe):
    work, _, output = finished_recipe
    # the CTC model's table is printed before PRETRANS (which starts from it) has finished training
    ctc_table = output.index("result rows -> exp/ctc/RESULTS.md")
    assert ctc_table < output.index("Finished jobid", output.index("rule train_pretrained_transducer:"))
    # its greedy row: the result column (empty unless greedy is its dev-chosen decoding), then the dev PER
    assert re.search(r"\| CTC +\| greedy +\|[ \d.]*\| \d+\.\d\d", output[ctc_table:ctc_table + 2000])
    times = output[output.index("Stage times of this run"):]
    for stage in ("| 2 | features", "| 4 | train CTC |", "| 7 | train PRETRANS", "| 9 | score"):
        assert stage in times
    assert times.index("| 9 | score") < times.index("RESULTS.md:") < re.search(r"\| PRETRANS +\| greedy", times).start()


def test_heldout_voice_speakers_are_scored_apart(finished_recipe):
    work, _, _ = finished_recipe
    table = [[cell.strip() for cell in line.strip("|").split("|")]
             for line in (work / "RESULTS.md").read_text().splitlines() if line.startswith("|")]
    columns = table[0]
    dev = columns.index("dev PER")
    assert columns[dev:dev + 3] == ["dev PER", "test PER", "heldout PER"]
    for row in table[2:]:
        assert float(row[columns.index("heldout PER")]) > 0, row
    speakers = {split: {s.speaker for s in SupervisionSet.from_file(work / f"data/manifests/timit_supervisions_{split}"
                                                                        ".jsonl.gz")}
                for split in ("train", "dev", "test", "heldout")}
    assert len(speakers["heldout"]) == 2
    assert not speakers["heldout"] & (speakers["train"] | speakers["dev"] | speakers["test"])
    assert (work / "exp/pretrained_transducer/decode_greedy/per_heldout.txt").read_text().startswith("%PER ")


def test_rerun_with_nothing_changed_does_nothing(finished_recipe):
    work, config, _ = finished_recipe
    result = run(work, config)
    assert "Nothing to be done" in result.stdout + result.stderr


def test_stage_range_and_decoding_change_rerun_only_what_they_affect(finished_recipe, tmp_path):
    work, config, _ = finished_recipe
    changed = tmp_path / "beam.yaml"
    changed.write_text(config.read_text().replace("beams: [4]", "beams: [6]"))
    result = subprocess.run([str(RUN_SH), "--config", str(changed), "--dir", str(work), "--", "--dry-run"],
                            capture_output=True, text=True, timeout=120)
    planned = set(re.findall(r"^(?:localrule|rule) (\w+):", result.stdout, re.M))
    assert {"decode", "score", "results"} <= planned
    assert not planned & {"demo_corpus", "manifests", "features", "feature_stats", "lang", "train_ctc", "phone_lm",
                          "train_transducer", "train_pretrained_transducer"}
