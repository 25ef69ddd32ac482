"""Using a trained model: transcription of audio files, TorchScript export, input-sensitivity figures, the CLI.

The models are tiny and random (hidden size 8), saved in the model.pt format the training stage writes: enough
to check the plumbing (features, resampling, alignment times, export equality) without training.
"""

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import soundfile
import torch
from lhotse import CutSet, LilcomChunkyWriter, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.supervision import AlignmentItem

from asrkit.search.transducer_search import greedy_search_batch
from asrkit.config import FeatureConfig
from asrkit.model.registry import build_model
from asrkit.checkpoint import save_checkpoint
from asrkit.cli import main
from asrkit.inference.export import METADATA, export_model
from asrkit.data.features import expand_features, make_extractor
from asrkit.data.lang import BLANK
from asrkit.inference.sensitivity import plot_sensitivity
from asrkit.search.alignment import ctc_best_path_frames, transducer_best_path_frames
from asrkit.inference.transcribe import Transcriber, read_audio
from asrkit.search.searches import greedy_path, search

ROOT = Path(__file__).resolve().parents[2]
PHONES = ["aa", "b", "d", "h#", "iy", "s", "sh", "t", "z"]
SILENT = "sh"  # its output bias is pushed down: the models never emit it
DURATION = 1.2  # seconds of test audio
MODELS = {
    "ctc": {"type": "ctc", "stack_frames": 3},
    "ctc_peephole": {"type": "ctc", "stack_frames": 2, "peephole": True},
    "transducer": {"type": "transducer", "stack_frames": 3, "decoder_embedding_dim": 6, "decoder_hidden_size": 8,
                   "joiner_dim": 8},
}
#: the recipe's default features
FEATURES = FeatureConfig.from_dict({"type": "fbank"})
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def signal(rate: int, duration: float = DURATION) -> np.ndarray:
    """Vowel-like test audio: a 120-200 Hz glide of harmonics under a formant-like envelope, plus a noise floor.

    A function of continuous time sampled at ``rate``, band-limited below 4 kHz: every rate from 8 kHz up
    represents the same sound.
    """
    t = np.arange(int(rate * duration)) / rate
    pitch = 120 + 80 * t / duration
    phase = 2 * np.pi * (120 * t + 40 * t ** 2 / duration)  # the integral of the pitch
    wave = sum(np.sin(k * phase) / k * np.exp(-((k * pitch - 700) / 900) ** 2) for k in range(1, 20))
    rng = np.random.default_rng(0)  # noise: random partials below 3.5 kHz
    noise = sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(rng.uniform(50, 3500, 40), rng.uniform(0, 7, 40)))
    return (0.3 * wave * (0.5 + 0.5 * np.sin(2 * np.pi * 2.5 * t) ** 2) + 0.002 * noise).astype(np.float32)


def save_model(exp_dir: Path, name: str, seed: int = 0) -> Path:
    """A random model of ``MODELS[name]`` saved as ``exp_dir/model.pt``, normalised with the test audio's
    statistics; ``SILENT`` can never win the argmax."""
    options = {"num_layers": 1, "hidden_size": 8, **MODELS[name]}
    tokens = [BLANK] + PHONES
    torch.manual_seed(seed)
    model = build_model(options, 123, len(tokens))
    output = model.output if options["type"] == "ctc" else model.joiner.output_linear
    with torch.no_grad():
        output.bias[tokens.index(SILENT)] = -100.0
    frames = expand_features(make_extractor(FEATURES).extract(torch.from_numpy(signal(16000)), 16000), FEATURES)
    stats = {"mean": frames.mean(0), "std": frames.std(0)}
    save_checkpoint(exp_dir / "model.pt", {
        "model": model.state_dict(), "model_options": options, "input_dim": 123, "vocab_size": len(tokens),
        "tokens": tokens, "units": {"type": "phones", "phone_set": 60}, "feature_options": asdict(FEATURES), "stats": stats})
    return exp_dir / "model.pt"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """Experiment directories holding a model.pt, by model name."""
    root = tmp_path_factory.mktemp("exp")
    for name in MODELS:
        save_model(root / name, name)
    return {name: root / name for name in MODELS}


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """The test sound as 16 kHz wav and flac, 8 kHz wav and 22.05 kHz stereo flac (left: the sound, right:
    half of it, so that the channel mean is 0.75 of it)."""
    root = tmp_path_factory.mktemp("audio")
    files = {"wav16": root / "a 16k.wav", "flac16": root / "a16k.flac", "wav8": root / "a8k.wav",
             "flac22": root / "a22k.flac"}
    soundfile.write(files["wav16"], pcm(signal(16000)), 16000)
    soundfile.write(files["flac16"], pcm(signal(16000)), 16000)
    soundfile.write(files["wav8"], pcm(signal(8000)), 8000)
    soundfile.write(files["flac22"], pcm(np.stack([signal(22050), 0.5 * signal(22050)], axis=1)), 22050)
    return files


def pcm(samples: np.ndarray) -> np.ndarray:
    """16-bit samples: libsndfile rounds floats differently for wav and flac, integers it stores as they are."""
    return np.round(samples * 32767).astype(np.int16)


# --- audio --------------------------------------------------------------------------------------------------

def test_audio_is_resampled_to_16khz_and_channels_averaged(audio):
    reference = signal(16000)
    inner = slice(320, -320)  # the resampler's filter runs over the edges: 20 ms are left out
    tolerance = 0.01 * np.abs(reference).max()
    from_8k = read_audio(audio["wav8"]).numpy()
    assert from_8k.shape == reference.shape
    assert np.abs(from_8k - reference)[inner].max() < tolerance
    from_22k = read_audio(audio["flac22"]).numpy()
    assert from_22k.shape == reference.shape
    assert np.abs(from_22k - 0.75 * reference)[inner].max() < tolerance
    assert torch.equal(read_audio(audio["wav16"]), read_audio(audio["flac16"]))


def test_unreadable_empty_and_too_short_audio_are_named(models, tmp_path):
    transcriber = Transcriber(models["ctc"])
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 16000)
    short = tmp_path / "short.flac"
    soundfile.write(short, np.zeros(100, dtype=np.float32), 16000)
    for path, reason in ((text, "unreadable audio"), (empty, "no audio samples"), (tmp_path / "gone.wav", "no such"),
                         (short, "shorter than one 25 ms feature window")):
        with pytest.raises(ValueError, match=re.escape(f"{path}: ") + ".*" + reason):
            transcriber.transcribe([path])
    with pytest.raises(ValueError, match="no model.pt"):
        Transcriber(tmp_path)
    save_checkpoint(tmp_path / "lm" / "model.pt", {"model": {}, "model_options": {}})  # as the phone LM's
    with pytest.raises(ValueError, match="not an acoustic model of the training stage .*lacks input_dim"):
        Transcriber(tmp_path / "lm")
    with pytest.raises(ValueError, match="decodes with greedy, prefix_beam, not 'beam'"):
        Transcriber(models["ctc"], method="beam")


def test_cli_names_nan_audio_and_a_directory_and_goes_on(models, audio, tmp_path, capsys):
    """NaN or infinite samples gave an empty transcript with exit status 0, a directory "no such audio file":
    each is an error for its file (status 1), and the files after it are still transcribed."""
    nan = tmp_path / "nan.wav"
    samples = signal(16000)
    samples[[10, 20, 30]] = np.nan
    soundfile.write(nan, samples, 16000, subtype="FLOAT")
    waveform = np.zeros(16000, dtype=np.float32)
    waveform[5] = np.inf
    with pytest.raises(ValueError, match=re.escape("<waveform 0>: 1 of 16000 samples are NaN or infinite")):
        Transcriber(models["ctc"]).transcribe([(waveform, 16000)])
    with pytest.raises(SystemExit) as exit_info:
        main(["transcribe", "--model", str(models["ctc"]), str(nan), str(tmp_path), str(audio["wav16"])])
    assert exit_info.value.code == 1
    output = capsys.readouterr()
    assert output.err.splitlines() == [f"error: {nan}: 3 of {samples.size} samples are NaN or infinite",
                                       f"error: {tmp_path}: a directory, not an audio file"]
    assert [line.split("\t")[0] for line in output.out.splitlines()] == [str(audio["wav16"])]


def test_audio_below_16khz_is_transcribed_with_a_warning(models, audio, capsys, caplog):
    """8 kHz audio was upsampled silently: a model trained on 16 kHz hears nothing above 4 kHz in it."""
    with pytest.raises(SystemExit) as exit_info:
        main(["transcribe", "--model", str(models["ctc"]), str(audio["wav8"]), str(audio["wav16"]),
              str(audio["flac22"])])
    assert exit_info.value.code == 0
    assert len(capsys.readouterr().out.splitlines()) == 3  # all three are transcribed
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"{audio['wav8']}: 8000 Hz audio, upsampled to 16000 Hz: the model was trained on 16 kHz "
                        f"audio and hears nothing above 4 kHz here; expect more errors than on 16 kHz audio"]


# --- transcription ------------------------------------------------------------------------------------------

def check_times(transcript, strictly: bool) -> None:
    times = transcript.times
    assert len(times) == len(transcript.tokens) > 0
    assert all(0 <= t < transcript.duration for t in times)
    assert all(a < b if strictly else a <= b for a, b in zip(times, times[1:]))


@pytest.mark.parametrize("name", ["ctc", "transducer"])
def test_transcribe_any_rate_and_format(models, audio, name):
    transcriber = Transcriber(models[name])
    wav16, flac16, wav8, flac22, memory = transcriber.transcribe(
        [audio["wav16"], str(audio["flac16"]), audio["wav8"], audio["flac22"],
         (torch.from_numpy(soundfile.read(audio["wav16"], dtype="float32")[0]), 16000)])
    assert (wav16.tokens, wav16.times) == (flac16.tokens, flac16.times) == (memory.tokens, memory.times)
    assert (wav16.source, memory.source) == (str(audio["wav16"]), "<waveform 4>")
    for transcript in (wav16, wav8, flac22):
        check_times(transcript, strictly=True)  # greedy: at most one phone per frame
        assert transcript.duration == pytest.approx(DURATION, abs=1e-3)
        assert set(transcript.tokens) <= set(PHONES) - {SILENT}
    # frames are 10 ms x stack_frames (3)
    assert all(round(t / 0.03, 6).is_integer() for t in wav16.times)
    assert wav16.format() == " ".join(f"{p}@{t:.2f}" for p, t in zip(wav16.tokens, wav16.times))


@pytest.mark.parametrize("name", ["ctc", "ctc_peephole", "transducer"])
def test_greedy_path_is_decode_greedy_search(models, name):
    transcriber = Transcriber(models[name])
    features = torch.randn(50, 123)
    path = greedy_path(transcriber.model, features)
    assert path.tokens == search(transcriber.model, "greedy", 1, features[None], torch.tensor([50]))[0]
    assert path.frames == sorted(set(path.frames))
    assert path.log_probs.shape[1] == len(PHONES) + 1
    if name != "transducer":  # the best path of the greedy output is the greedy path itself
        assert ctc_best_path_frames(path.log_probs.double().numpy(), path.tokens) == path.frames


@pytest.mark.parametrize("name, method", [("ctc", "prefix_beam"), ("transducer", "modified_beam"),
                                          ("transducer", "beam")])
def test_beam_search_times_come_from_the_best_alignment(models, audio, name, method):
    transcriber = Transcriber(models[name], method=method, beam=3)
    transcript = transcriber.transcribe([audio["wav16"]])[0]
    samples = read_audio(audio["wav16"])
    features = transcriber.network_input(transcriber.static_features(samples, "test"))
    with torch.no_grad():
        tokens = search(transcriber.model, method, 3, features[None], torch.tensor([features.size(0)]))[0]
    assert transcript.tokens == transcriber.tokens.decode(tokens)
    check_times(transcript, strictly=method != "beam")  # Graves's search may emit several labels per frame


def test_viterbi_alignments_equal_brute_force():
    generator = torch.Generator().manual_seed(3)
    # CTC: the best of all 3^6 frame labelings that collapse to the tokens
    log_probs = torch.randn(6, 3, generator=generator, dtype=torch.float64).log_softmax(-1).numpy()
    for tokens in ([1, 2], [1, 1], [2, 1, 2]):
        best, best_frames = -np.inf, None
        for labels in itertools.product(range(3), repeat=6):
            starts = [t for t, label in enumerate(labels) if label != 0 and (t == 0 or labels[t - 1] != label)]
            if [labels[t] for t in starts] == tokens:
                score = sum(log_probs[t, label] for t, label in enumerate(labels))
                if score > best:
                    best, best_frames = score, starts
        assert ctc_best_path_frames(log_probs, tokens) == best_frames
    # transducer: the best of all placements of 3 labels in 5 frames
    blank = torch.randn(5, 4, generator=generator, dtype=torch.float64).numpy()
    label = torch.randn(5, 3, generator=generator, dtype=torch.float64).numpy()
    best, best_frames = -np.inf, None
    for frames in itertools.combinations_with_replacement(range(5), 3):  # labels at frames t1 <= t2 <= t3
        score = sum(label[t, u] for u, t in enumerate(frames))
        score += sum(blank[t, sum(f <= t for f in frames)] for t in range(5))  # blank ends every frame
        if score > best:
            best, best_frames = score, list(frames)
    assert transducer_best_path_frames(blank, label) == best_frames
    best, best_frames = -np.inf, None
    for frames in itertools.combinations(range(5), 3):  # one token per frame: labels at t1 < t2 < t3, else blank
        score = sum(label[t, u] for u, t in enumerate(frames))
        score += sum(blank[t, sum(f < t for f in frames)] for t in range(5) if t not in frames)
        if score > best:
            best, best_frames = score, list(frames)
    assert transducer_best_path_frames(blank, label, one_label_per_frame=True) == best_frames


# --- export -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(MODELS))
def test_export_equals_the_model(models, tmp_path, name):
    transcriber = Transcriber(models[name])
    model = transcriber.model
    export_model(models[name], tmp_path / "model.ts")
    extra = {METADATA: ""}
    exported = torch.jit.load(str(tmp_path / "model.ts"), _extra_files=extra)
    metadata = json.loads(extra[METADATA])
    assert metadata["tokens"] == [BLANK] + PHONES and metadata["input_dim"] == 123
    assert metadata["frame_shift_seconds"] == pytest.approx(0.01 * MODELS[name]["stack_frames"])

    def reference(x: torch.Tensor, lens: torch.Tensor):
        return model(x, lens) if name.startswith("ctc") else model.encoder(x, lens)

    generator = torch.Generator().manual_seed(5)
    lens = torch.tensor([47, 31, 8])  # lengths that are no multiple of stack_frames, and a padded batch
    # padding that is not zero: the exported encoder, as the model's, ignores it (stacking included)
    batch = torch.randn(3, 47, 123, generator=generator)
    with torch.no_grad():
        out, out_lens = exported(batch, lens)
        expected, expected_lens = reference(batch, lens)
        assert torch.equal(out_lens, expected_lens)
        assert torch.allclose(out, expected, atol=1e-5, rtol=0)
        for n, length in enumerate(lens.tolist()):  # each utterance alone, at its own length
            alone, alone_lens = exported(batch[n : n + 1, :length], lens[n : n + 1])
            assert torch.allclose(alone[0], out[n, : int(alone_lens)], atol=1e-5, rtol=0)
        static = torch.randn(20, 41, generator=generator)
        assert torch.allclose(exported.normalise(expand_features(static, FEATURES)), transcriber.network_input(static))
        if name == "transducer":
            encoder_out = expected[:2, :6].reshape(12, -1)
            tokens = torch.randint(0, len(PHONES) + 1, (12,), generator=generator)
            h, c = exported.initial_state(12)
            decoder_out, h, c = exported.decoder_step(tokens, h, c)
            reference_out, (h_ref, c_ref) = model.decoder(tokens[:, None])
            assert torch.allclose(decoder_out, reference_out[:, 0], atol=1e-5, rtol=0)
            assert torch.allclose(h, h_ref, atol=1e-5, rtol=0) and torch.allclose(c, c_ref, atol=1e-5, rtol=0)
            joint = model.joiner(model.joiner.project_encoder(encoder_out), model.joiner.project_decoder(decoder_out))
            assert torch.allclose(exported.joint(encoder_out, decoder_out), joint.log_softmax(-1), atol=1e-5, rtol=0)
            assert exported_greedy_search(exported, batch, lens) == greedy_search_batch(model, expected, expected_lens)


def test_an_export_on_a_gpu_machine_loads_anywhere(models, tmp_path, monkeypatch):
    """Where torch sees a GPU (pretended here), export still writes CPU tensors: a plain ``torch.jit.load`` on a
    machine without one, in a new process and without map_location, loads and runs the file. (An export that
    followed device auto would move the model to CUDA, which this CPU build of torch refuses.)"""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    export_model(models["transducer"], tmp_path / "model.ts")
    loaded = subprocess.run([sys.executable, "-c", "import sys, torch; m = torch.jit.load(sys.argv[1]); "
                             "print(m(torch.zeros(1, 30, 123), torch.tensor([30]))[0].device)", str(tmp_path / "model.ts")],
                            capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0 and loaded.stdout.strip() == "cpu", loaded.stderr[-2000:]


def exported_greedy_search(exported: torch.jit.ScriptModule, x: torch.Tensor, lens: torch.Tensor) -> List[List[int]]:
    """Greedy transducer search on an exported module's methods alone, one utterance at a time."""
    hyps = []
    encoder_out, encoder_lens = exported(x, lens)
    for n in range(x.size(0)):
        h, c = exported.initial_state(1)
        decoder_out, h, c = exported.decoder_step(torch.tensor([0]), h, c)  # blank starts
        hyp: List[int] = []
        for t in range(int(encoder_lens[n])):
            token = int(exported.joint(encoder_out[n, t : t + 1], decoder_out).argmax())
            if token != 0:
                hyp.append(token)
                decoder_out, h, c = exported.decoder_step(torch.tensor([token]), h, c)
        hyps.append(hyp)
    return hyps


# --- input sensitivity --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ctc", "transducer"])
def test_sensitivity_figure_from_audio(models, audio, tmp_path, name):
    phone = Transcriber(models[name]).transcribe([audio["wav8"]])[0].tokens[-1]
    output = tmp_path / "sensitivity.png"
    result = plot_sensitivity(models[name], phone, output, audio=audio["wav8"])
    assert output.read_bytes().startswith(PNG_MAGIC)
    assert result.gradient.shape == (round(DURATION * 100), 41)
    assert torch.isfinite(result.gradient).all() and result.gradient.abs().max() > 0
    # a bidirectional LSTM sees everything: the frames far from the emitting one get a gradient too
    emitting = result.frame * 3
    assert result.gradient[: max(emitting - 10, 1)].abs().sum() + result.gradient[emitting + 13 :].abs().sum() > 0
    assert result.emitted[result.path.frames.index(result.frame)] == phone
    assert not list(tmp_path.glob(".*partial*"))


def cut_manifest(wav: Path, root: Path) -> Path:
    """A cut manifest with stored fbank features and a reference phone alignment for ``wav``."""
    recording = Recording.from_file(wav, recording_id="utt1")
    phones = [("h#", 0.0, 0.2), ("s", 0.2, 0.35), ("iy", 0.35, 0.7), ("d", 0.7, 0.8), ("h#", 0.8, DURATION)]
    supervision = SupervisionSegment(id="utt1", recording_id="utt1", start=0.0, duration=recording.duration,
                                     alignment={"phone": [AlignmentItem(p, s, e - s) for p, s, e in phones]})
    cuts = CutSet.from_manifests(recordings=RecordingSet.from_recordings([recording]),
                                 supervisions=SupervisionSet.from_segments([supervision]))
    cuts = cuts.compute_and_store_features(make_extractor(FEATURES), storage_path=root / "feats",
                                           storage_type=LilcomChunkyWriter)
    cuts.to_file(root / "cuts.jsonl.gz")
    return root / "cuts.jsonl.gz"


def test_sensitivity_cli_from_cuts_with_reference(models, audio, tmp_path, capsys):
    cuts = cut_manifest(audio["wav16"], tmp_path)
    utt = next(iter(CutSet.from_file(cuts))).id
    phone = Transcriber(models["ctc"]).transcribe([audio["wav16"]])[0].tokens[0]
    output = tmp_path / "figure.png"
    with pytest.raises(SystemExit) as exit_info:
        main(["sensitivity", "--model", str(models["ctc"]), "--cuts", str(cuts), "--utt", utt, "--phone", phone,
              "--output", str(output)])
    assert exit_info.value.code == 0
    assert output.read_bytes().startswith(PNG_MAGIC)
    assert re.match(rf"{re.escape(str(output))}: d log P\({re.escape(phone)} at \d+\.\d\d s, encoder frame \d+\) "
                    rf"/ d static features of {utt}; greedy output: ", capsys.readouterr().out)
    with pytest.raises(SystemExit, match=re.escape(f"error: {cuts}: no cut 'nope'")):
        main(["sensitivity", "--model", str(models["ctc"]), "--cuts", str(cuts), "--utt", "nope", "--phone", phone,
              "--output", str(output)])


def test_unknown_or_never_emitted_phone_is_refused(models, audio, tmp_path):
    output = tmp_path / "figure.png"
    with pytest.raises(ValueError, match=f"unknown token 'zz': the model's tokens are {' '.join(PHONES)}"):
        plot_sensitivity(models["ctc"], "zz", output, audio=audio["wav16"])
    with pytest.raises(ValueError, match=f"unknown token '{BLANK}'"):
        plot_sensitivity(models["ctc"], BLANK, output, audio=audio["wav16"])
    emitted = " ".join(Transcriber(models["transducer"]).transcribe([audio["wav16"]])[0].tokens)
    with pytest.raises(SystemExit, match=re.escape(f"error: {audio['wav16']}: the model never emits '{SILENT}' on "
                                                   f"its greedy path (greedy output: {emitted})")):
        main(["sensitivity", "--model", str(models["transducer"]), "--audio", str(audio["wav16"]),
              "--phone", SILENT, "--output", str(output)])
    assert not output.exists()


# --- command line -------------------------------------------------------------------------------------------

def test_cli_transcribe_as_console_script(models, audio, tmp_path):
    script = shutil.which("asrkit", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "asrkit.cli"]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt nonsense")
    result = subprocess.run(command + ["transcribe", "--model", str(models["ctc"] / "model.pt"),
                                       str(audio["wav16"]), str(bad), str(audio["flac22"])],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(audio["wav16"]), str(audio["flac22"])]
    for line in lines:
        assert re.fullmatch(r"[^\t]+\t(\S+@\d+\.\d\d)( \S+@\d+\.\d\d)*", line)
    assert f"error: {bad}: unreadable audio" in result.stderr


def test_cli_export_and_transcribe_in_process(models, audio, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--model", str(models["transducer"]), "--output", str(tmp_path / "t.ts")])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"{models['transducer']} -> {tmp_path / 't.ts'}\n"
    assert torch.jit.load(str(tmp_path / "t.ts")).initial_state(2)[0].shape == (1, 2, 8)
    with pytest.raises(SystemExit) as exit_info:
        main(["transcribe", "--model", str(models["transducer"]), "--method", "modified_beam", "--beam", "2",
              str(audio["wav8"])])
    assert exit_info.value.code == 0
    expected = Transcriber(models["transducer"], "modified_beam", 2).transcribe([audio["wav8"]])[0]
    assert capsys.readouterr().out == f"{audio['wav8']}\t{expected.format()}\n"
    with pytest.raises(SystemExit, match=re.escape(f"error: {tmp_path}: no model.pt")):
        main(["export", "--model", str(tmp_path), "--output", str(tmp_path / "x.ts")])
