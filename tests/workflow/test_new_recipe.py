"""`asrkit new-recipe`: a recipe from the template, for a toy corpus the test writes, runs through scoring."""

import re
import subprocess
import sys

import pytest
import soundfile

from asrkit.demo import sentences as text, tts
from asrkit.demo.speakers import speaking_style
from asrkit.workflow.new_recipe import create_recipe

pytestmark = pytest.mark.slow  # minutes: left out of `make test-fast`

SIZES = {"train": 16, "dev": 3, "test": 3}
TINY = """
corpus_dir: {corpus}
units: {{type: sentencepiece, model_type: char, vocab_size: 40}}
model: {{num_layers: 1, hidden_size: 32, stack_frames: 3, dropout: 0.0}}
training: {{num_epochs: 2, max_duration: 30, lr: 0.005, num_workers: 0}}
decoding: {{ctc: [greedy], transducer: [greedy], beams: [1], splits: [test]}}
"""


def write_toy_corpus(root):
    """<part>/<utt>.wav + <utt>.txt, read by the demo voices, the parts' folders named as in the template."""
    sentences = iter(text.select_sentences(sum(SIZES.values()), seed=5))
    voices = list(tts.VOICES)
    for part, count in SIZES.items():
        (root / part).mkdir(parents=True)
        requests, names = [], []
        for i in range(count):
            style = speaking_style(f"{'MF'[i % 2]}{i}", voices[i % len(voices)], seed=5)
            requests.append(tts.SynthesisRequest(next(sentences), style, i))
            names.append(f"{part}_{i:03d}")
        for name, request, synthesis in zip(names, requests, tts.synthesize(requests)):
            soundfile.write(root / part / f"{name}.wav", synthesis.audio, tts.SAMPLE_RATE, subtype="PCM_16")
            (root / part / f"{name}.txt").write_text(" ".join(text.sentence_words(request.text)) + "\n")


def test_new_recipe_runs_through_scoring(tmp_path):
    recipes = tmp_path / "my recipes"
    recipe = create_recipe("toy", recipes)
    assert sorted(p.relative_to(recipe).as_posix() for p in recipe.rglob("*") if p.is_file()) == [
        "config.yaml", "local/prepare.py", "rules/prepare.smk", "run.sh"]
    assert "recipe: toy\n" in (recipe / "config.yaml").read_text()
    with pytest.raises(ValueError, match="exists already"):
        create_recipe("toy", recipes)
    with pytest.raises(ValueError, match="lower-case"):
        create_recipe("Toy-1", recipes)

    write_toy_corpus(tmp_path / "corpus")
    extra = tmp_path / "tiny.yaml"
    extra.write_text(TINY.format(corpus=tmp_path / "corpus"))
    result = subprocess.run([str(recipe / "run.sh"), "--config", str(extra), "--dir", str(tmp_path / "work"),
                             "--cores", "1"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    work = tmp_path / "work"
    assert (work / "data/manifests/toy_supervisions_train.jsonl.gz").is_file()
    for metric in ("wer", "cer"):
        first = (work / f"exp/ctc/decode_greedy/{metric}_test.txt").read_text().splitlines()[0]
        match = re.fullmatch(rf"%{metric.upper()} (\d+\.\d\d) \[ (\d+) / (\d+), (\d+) ins, (\d+) del, (\d+) sub \]",
                             first)
        assert match and int(match[2]) == sum(map(int, match.groups()[3:]))
    assert re.search(r"^\| *CTC *\| *greedy *\|", (work / "RESULTS.md").read_text(), re.M)


def test_new_recipe_command_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "asrkit.cli", "new-recipe", "mine", "--dir", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "mine" / "run.sh").stat().st_mode & 0o111
    help_text = subprocess.run([str(tmp_path / "mine" / "run.sh"), "--help"], capture_output=True, text=True).stdout
    assert help_text.startswith("mine: speech recognition on a corpus laid out as")
