"""The LibriSpeech recipe end to end through Snakemake, on a tiny synthetic LibriSpeech-layout corpus: stage 0
to WER and CER, with sentencepiece units, the same shared stages as TIMIT."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from lhotse import SupervisionSet

from asrkit.scoring.error_rates import score_utterances

pytestmark = pytest.mark.slow  # minutes: left out of `make test-fast`

RUN_SH = Path(__file__).resolve().parents[2] / "recipes" / "librispeech" / "run.sh"

# CTC, and PRETRANS (its encoder from the CTC model, its prediction network from the token LM of stage 5),
# which learns in as few epochs as CTC; TRANS is the same code without the initialisation (as in TIMIT's test).
TINY = """
corpus_dir: null
demo_corpus: {num_train_speakers: 14, num_dev_speakers: 2, num_test_speakers: 2, utterances_per_speaker: 8}
units: {type: sentencepiece, model_type: unigram, vocab_size: 40}
models: [ctc, pretrained_transducer]
phone_lm: {num_epochs: 5}
model: {num_layers: 2, hidden_size: 96, stack_frames: 3, dropout: 0.0}
transducer: {decoder_embedding_dim: 64, decoder_hidden_size: 64, joiner_dim: 64, warmup_batches: 40}
training: {num_epochs: 12, max_duration: 12, optimizer: adam, lr: 0.004, lr_decay: 0.95, num_workers: 0}
decoding: {ctc: [greedy, prefix_beam], transducer: [greedy], beams: [4], splits: [test]}
"""
TOTALS = r"%{} (\d+\.\d\d) \[ (\d+) / (\d+), (\d+) ins, (\d+) del, (\d+) sub \]"


@pytest.fixture(scope="module")
def finished_recipe(tmp_path_factory):
    work = tmp_path_factory.mktemp("librispeech")
    config = work / "tiny.yaml"
    config.write_text(TINY)
    result = subprocess.run([str(RUN_SH), "--config", str(config), "--dir", str(work), "--cores", "1"],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return work


def best_constant_cer(work: Path) -> float:
    """The CER of the best trivial output: the empty hypothesis, or any one training word for every utterance."""
    test = SupervisionSet.from_file(work / "data/manifests/librispeech_supervisions_test.jsonl.gz")
    train = SupervisionSet.from_file(work / "data/manifests/librispeech_supervisions_train.jsonl.gz")
    refs = {s.id: list(s.text.replace(" ", "")) for s in test}
    candidates = [""] + sorted({w for s in train for w in s.text.split()})
    return min(score_utterances(refs, {u: list(word) for u in refs}).totals.rate for word in candidates)


def test_recipe_reaches_word_and_character_error_rates(finished_recipe):
    work = finished_recipe
    assert (work / "data/lang/bpe.model").is_file()
    results = (work / "RESULTS.md").read_text()
    header = next(line for line in results.splitlines() if line.startswith("| model"))
    assert [c.strip() for c in header.split("|")[1:5]] == ["model", "decoding", "test WER", "test CER"]
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]) for line in results.splitlines()
            if line.startswith("| ") and "---" not in line and "model" not in line}
    assert rows == {("CTC", "greedy"), ("CTC", "prefix beam 4"), ("PRETRANS", "greedy")}
    trivial = best_constant_cer(work)
    assert trivial >= 75  # the test's sentences share few letters with any one word
    cer = {}
    for model, decoding in (("ctc", "greedy"), ("ctc", "prefix_beam_4"), ("pretrained_transducer", "greedy")):
        folder = work / f"exp/{model}/decode_{decoding}"
        rates = {}
        for metric in ("WER", "CER"):
            report = (folder / f"{metric.lower()}_test.txt").read_text()
            match = re.match(TOTALS.format(metric), report)
            assert match, (model, decoding, report[:200])
            rate, errors, count, ins, dels, subs = float(match[1]), *map(int, match.groups()[1:])
            assert errors == ins + dels + subs and rate == pytest.approx(100 * errors / count, abs=0.005)
            assert "## Alignments" in report and "## Top 20 confusions" in report
            rates[metric] = rate
        # every model spells more of the test set right than any constant output can
        assert rates["CER"] < trivial, (model, decoding, rates, trivial)
        assert rates["CER"] < rates["WER"]
        cer[decoding if model == "ctc" else model] = rates["CER"]
    # the beam search of the CTC model, its best decoding, clearly so
    assert cer["prefix_beam_4"] < trivial - 10, (cer, trivial)
    assert (work / "exp/ctc/training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "dev WER" in (work / "logs/4_train_ctc.log").read_text()
    assert "dev perplexity" in (work / "logs/5_phone_lm.log").read_text()


def test_transcribe_prints_words(finished_recipe):
    work = finished_recipe
    flac = sorted((work / "data/demo_corpus/test-clean").rglob("*.flac"))[0]
    result = subprocess.run([sys.executable, "-m", "asrkit.cli", "transcribe", "--model", str(work / "exp/ctc"), str(flac)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    words = [item.rsplit("@", 1)[0] for item in result.stdout.split("\t", 1)[1].split()]
    assert words and all(w and "\u2581" not in w for w in words)
