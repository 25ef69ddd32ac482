"""Filterbank speed: kaldifeat vs kaldi-native-fbank vs lhotse's own Fbank; the feature stage end to end.

Usage: python bench/features.py [--recordings DEMO/data/manifests/timit_recordings_test.jsonl.gz
       --supervisions DEMO/data/manifests/timit_supervisions_test.jsonl.gz --utterances 96 --results]

Extractors: the same features (asrkit's default: 40 mel bands + log energy, 25 ms windows every 10 ms, no
dither, snip_edges false) from audio already in memory, one utterance per call, in seconds of audio per
CPU second (this process, 1 torch thread); "max diff" is the largest absolute difference from kaldifeat's
output. kaldifeat also runs once with all utterances in one call (it batches a list). The feature stage end
to end is ``asrkit.data.features.compute_features`` (read audio, compute, store with lilcom, write the manifest)
with 1 and 2 jobs, by wall time: the parallel speed-up on this machine, and with the number of jobs it chooses
from the amount of audio (``choose_num_jobs``, the recipe's way). Its workers have one torch thread each; the
alternative is lhotse's own pool, whose spawned workers take torch's default (one per core). The one-job stage
is then broken down: each of its steps timed on its own, one after another in this process (read the
manifests, read the audio, kaldifeat, lilcom compression and writing, the cut manifest), the rest being
lhotse's work per cut; and the start-up of a pool of spawned workers, what a second job must win back.
"""

import argparse
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch
from lhotse import CutSet, LilcomChunkyWriter, RecordingSet, SupervisionSet
from lhotse.features import Fbank, FbankConfig

from asrkit.config import FeatureConfig
from asrkit.data.features import MIN_SECONDS_PER_JOB, choose_num_jobs, compute_features, make_extractor
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
                  lhotse_pool: bool = False, min_seconds_per_job: float = 0.0) -> float:
    """Wall seconds of asrkit.data.features.compute_features on these manifests, into a temporary folder.

    ``min_seconds_per_job``: 0 runs exactly ``num_jobs`` workers; the recipe's default lets the stage choose.
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
                             tmp / "feats", FBANK, num_jobs=num_jobs, min_seconds_per_job=min_seconds_per_job)
        return time.perf_counter() - start


def stage_breakdown(recordings: RecordingSet, supervisions: SupervisionSet) -> Dict[str, float]:
    """Wall seconds of each step of the one-job stage, timed on its own in this process, and of the stage."""
    steps: Dict[str, float] = {}

    def timed(name: str, step: Callable[[], object]) -> object:
        start = time.perf_counter()
        result = step()
        steps[name] = time.perf_counter() - start
        return result

    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        tmp = Path(tmp)
        recordings.to_file(tmp / "recordings.jsonl.gz")
        supervisions.to_file(tmp / "supervisions.jsonl.gz")
        cuts = timed("read the manifests, make the cuts", lambda: CutSet.from_manifests(
            recordings=RecordingSet.from_file(tmp / "recordings.jsonl.gz"),
            supervisions=SupervisionSet.from_file(tmp / "supervisions.jsonl.gz")).to_eager())
        audio = timed("read the audio", lambda: [cut.load_audio()[0] for cut in cuts])
        extractor = make_extractor(FBANK)
        feats = timed("kaldifeat", lambda: [extractor.extract(samples, SAMPLING_RATE) for samples in audio])

        def store() -> None:
            with LilcomChunkyWriter(tmp / "feats-alone") as writer:
                for cut, matrix in zip(cuts, feats):
                    writer.write(cut.id, matrix)
        timed("lilcom: compress and write", store)
        stage = timed("the stage (compute_features, 1 job)", lambda: compute_features(
            tmp / "recordings.jsonl.gz", tmp / "supervisions.jsonl.gz", tmp / "cuts.jsonl.gz", tmp / "feats",
            FBANK, num_jobs=1))
        timed("write the cut manifest", lambda: stage.to_file(tmp / "cuts-again.jsonl.gz"))
    return steps


def _worker_ready() -> None:
    import kaldifeat  # noqa: F401 (what a feature worker needs besides torch and lhotse)


def pool_start_seconds(num_jobs: int) -> float:
    """Wall seconds to start ``num_jobs`` spawned one-thread workers (as asrkit's) and have each run a task."""
    start = time.perf_counter()
    with ProcessPoolExecutor(num_jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=torch.set_num_threads, initargs=(1,)) as executor:
        for future in [executor.submit(_worker_ready) for _ in range(num_jobs)]:
            future.result()
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
    most = max(args.jobs)
    chosen = choose_num_jobs(audio_seconds, most)
    auto = stage_seconds(recordings, supervisions, most, min_seconds_per_job=MIN_SECONDS_PER_JOB)
    first = stage[variants[0]]
    stage_rows = [[jobs, "lhotse's pool (one thread per core)" if lhotse else "asrkit's (one thread each)",
                   seconds, audio_seconds / seconds, first / seconds] for (jobs, lhotse), seconds in stage.items()]
    stage_rows.append([f"{chosen} (chosen: at most {most}, {MIN_SECONDS_PER_JOB:g} s of audio each)",
                       "asrkit's (one thread each)", auto, audio_seconds / auto, first / auto])

    steps = stage_breakdown(recordings, supervisions)
    total = steps.pop("the stage (compute_features, 1 job)")
    steps["the rest: lhotse's work per cut, temporary names, sorting"] = total - sum(steps.values())
    breakdown_rows = [[name, seconds, seconds / total] for name, seconds in steps.items()]
    breakdown_rows.append(["the stage (compute_features, 1 job)", total, 1.0])
    pools = {jobs: pool_start_seconds(jobs) for jobs in sorted({1, *args.jobs})}
    publish("bench/features.py" + (" --quick" if args.quick else ""), "Features: extractors and the feature stage",
            f"{len(audio)} recordings of `{args.recordings}` ({audio_seconds:.1f} s of audio), 16 kHz.\n\n"
            + table(["extractor", "audio s per CPU s", "vs kaldifeat", "max diff from kaldifeat"], rows) + missing
            + "\n\nThe stage end to end (`asrkit.data.features.compute_features`: read, compute, store, manifest):\n\n"
            + table(["num_jobs", "worker pool", "wall s", "audio s per wall s",
                     f"speed-up vs {args.jobs[0]} job(s)"], stage_rows)
            + f"\n\nThe one-job stage against bare kaldifeat: {audio_seconds / total:.0f} audio s per wall s, "
              f"**{audio_seconds / total / base:.2f}** of kaldifeat's {base:.0f} per CPU s. Its steps, each timed "
              f"on its own:\n\n"
            + table(["step", "wall s", "share of the stage"], breakdown_rows)
            + "\n\nStarting spawned one-thread workers (each imports torch, lhotse and kaldifeat) and running a "
              "task in each: " + ", ".join(f"{jobs} worker(s) {seconds:.2f} s" for jobs, seconds in pools.items())
            + ".",
            args.results)


if __name__ == "__main__":
    main()
