"""Filterbank speed: kaldifeat vs kaldi-native-fbank vs lhotse's own Fbank; the feature stage end to end.

Usage: python bench/features.py [--recordings DEMO/data/manifests/timit_recordings_test.jsonl.gz
       --supervisions DEMO/data/manifests/timit_supervisions_test.jsonl.gz --utterances 96 --results]

Extractors: the same features (asrkit's default: 40 mel bands + log energy, 25 ms windows every 10 ms, no
dither, snip_edges false) from audio already in memory, one utterance per call, in seconds of audio per
CPU second (this process, 1 torch thread); "max diff" is the largest absolute difference from kaldifeat's
output. kaldifeat also runs once with all utterances in one call (it batches a list). The feature stage end
to end is ``asrkit.data.features.compute_features`` (read audio, compute, store with lilcom, write the manifest)
with 1 and 2 jobs, by wall time: the parallel speed-up on this machine. Its workers have one torch thread
each; the alternative is lhotse's own pool, whose spawned workers take torch's default (one per core).
"""

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
from lhotse import CutSet, LilcomChunkyWriter, RecordingSet, SupervisionSet
from lhotse.features import Fbank, FbankConfig

from asrkit.config import FeatureConfig
from asrkit.data.features import compute_features, make_extractor
from report import DEMO, add_common_options, cpu_seconds, parse_args, publish, table

try:
    import kaldi_native_fbank
except ImportError:  # optional: pyproject's "bench" extra
    kaldi_native_fbank = None

SAMPLING_RATE = 16000
NUM_MEL_BINS = 40
#: the recipe's features: 40 mel bands and energy
FBANK = FeatureConfig.from_dict({"type": "fbank", "num_mel_bins": NUM_MEL_BINS})


def knf_fbank() -> Callable[[np.ndarray], np.ndarray]:
    """kaldi-native-fbank with the options of asrkit's kaldifeat extractor (as lhotse sets them)."""
    options = kaldi_native_fbank.FbankOptions()
    options.frame_opts.dither = 0.0
    options.frame_opts.snip_edges = False
    options.mel_opts.num_bins = NUM_MEL_BINS
    options.mel_opts.high_freq = -400.0  # lhotse's default for kaldifeat: 400 Hz below Nyquist
    options.use_energy = True
    options.energy_floor = 1e-10  # lhotse's EPSILON, which it gives kaldifeat

    def extract(samples: np.ndarray) -> np.ndarray:
        fbank = kaldi_native_fbank.OnlineFbank(options)
        fbank.accept_waveform(SAMPLING_RATE, samples.tolist())
        fbank.input_finished()
        return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])
    return extract


def extractors() -> Dict[str, Callable[[np.ndarray], np.ndarray]]:
    """One-utterance extractors by name: (num_samples,) float32 -> (num_frames, 41)."""
    kaldifeat = make_extractor(FBANK)
    lhotse_fbank = Fbank(FbankConfig(num_mel_bins=NUM_MEL_BINS, use_energy=True, dither=0.0, snip_edges=False))
    found = {"kaldifeat (asrkit.data.features)": lambda s: kaldifeat.extract(s, SAMPLING_RATE),
             "lhotse Fbank (torch)": lambda s: lhotse_fbank.extract(s, SAMPLING_RATE)}
    if kaldi_native_fbank is not None:
        found["kaldi-native-fbank"] = knf_fbank()
    return found


def stage_seconds(recordings: RecordingSet, supervisions: SupervisionSet, num_jobs: int,
                  lhotse_pool: bool = False) -> float:
    """Wall seconds of asrkit.data.features.compute_features on these manifests, into a temporary folder.

    ``lhotse_pool``: the alternative, lhotse's own worker pool (spawned processes with torch's default of one
    thread per core) computing and storing the same features, as asrkit did before its one-thread workers.
    """
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        tmp = Path(tmp)
        recordings.to_file(tmp / "recordings.jsonl.gz")
        supervisions.to_file(tmp / "supervisions.jsonl.gz")
        start = time.perf_counter()
        if lhotse_pool:
            CutSet.from_manifests(recordings=recordings, supervisions=supervisions).compute_and_store_features(
                extractor=make_extractor(FBANK), storage_path=tmp / "feats", num_jobs=num_jobs,
                storage_type=LilcomChunkyWriter)
        else:
            compute_features(tmp / "recordings.jsonl.gz", tmp / "supervisions.jsonl.gz", tmp / "cuts.jsonl.gz",
                             tmp / "feats", FBANK, num_jobs=num_jobs)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=Path, default=DEMO / "data/manifests/timit_recordings_test.jsonl.gz")
    parser.add_argument("--supervisions", type=Path, default=DEMO / "data/manifests/timit_supervisions_test.jsonl.gz")
    parser.add_argument("--utterances", type=int, default=96, help="first N recordings (default 96)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="num_jobs of the stage (default 1 2)")
    add_common_options(parser)
    args = parse_args(parser)
    if args.quick:
        args.utterances = 8
    recordings = RecordingSet.from_file(args.recordings).to_eager().subset(first=args.utterances)
    ids = set(recordings.ids)
    supervisions = SupervisionSet.from_file(args.supervisions).filter(lambda s: s.recording_id in ids).to_eager()
    audio = [r.load_audio()[0] for r in recordings]
    audio_seconds = sum(r.duration for r in recordings)

    outputs: Dict[str, List[np.ndarray]] = {}
    speed: Dict[str, float] = {}
    for name, extract in extractors().items():
        extract(audio[0])  # warm-up
        seconds = cpu_seconds(lambda: outputs.__setitem__(name, [np.asarray(extract(a)) for a in audio]))
        speed[name] = audio_seconds / seconds
    reference = next(iter(outputs.values()))
    kaldifeat = make_extractor(FBANK)
    speed["kaldifeat, all in one call"] = audio_seconds / cpu_seconds(lambda: kaldifeat.extract(audio, SAMPLING_RATE))
    base = speed["kaldifeat (asrkit.data.features)"]
    rows = [[name, value, value / base,
             max(float(np.abs(o - r).max()) for o, r in zip(outputs[name], reference)) if name in outputs else "-"]
            for name, value in speed.items()]
    missing = "" if kaldi_native_fbank else "\n\nkaldi-native-fbank is not installed (pip install .[bench]): no row."

    variants = [(jobs, False) for jobs in args.jobs] + [(jobs, True) for jobs in args.jobs if jobs > 1]
    stage = {variant: stage_seconds(recordings, supervisions, *variant) for variant in variants}
    first = stage[variants[0]]
    stage_rows = [[jobs, "lhotse's pool (one thread per core)" if lhotse else "asrkit's (one thread each)",
                   seconds, audio_seconds / seconds, first / seconds] for (jobs, lhotse), seconds in stage.items()]
    publish("bench/features.py" + (" --quick" if args.quick else ""), "Features: extractors and the feature stage",
            f"{len(audio)} recordings of `{args.recordings}` ({audio_seconds:.1f} s of audio), 16 kHz.\n\n"
            + table(["extractor", "audio s per CPU s", "vs kaldifeat", "max diff from kaldifeat"], rows) + missing
            + "\n\nThe stage end to end (`asrkit.data.features.compute_features`: read, compute, store, manifest):\n\n"
            + table(["num_jobs", "worker pool", "wall s", "audio s per wall s",
                     f"speed-up vs {args.jobs[0]} job(s)"], stage_rows),
            args.results)


if __name__ == "__main__":
    main()
