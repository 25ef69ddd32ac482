"""The tiny TIMIT-layout recipe run that the fault, bad-input and SLURM tests share, and how they read its outputs."""

import subprocess
from pathlib import Path
from typing import List

import numpy as np

from process_groups import run_group

ROOT = Path(__file__).resolve().parents[1]
RUN_SH = ROOT / "recipes" / "timit" / "run.sh"
RUN_TIMEOUT = 900  # seconds for a whole run; a hung run fails the test instead of the CI job

# Dropout and a loader worker process: a resumed epoch must restore the RNG streams of both to be exact.
TINY = """
corpus_dir: null
models: [ctc]
num_jobs: 2
demo_corpus: {num_train_speakers: 6, num_dev_speakers: 1, num_test_speakers: 2}
model: {num_layers: 1, hidden_size: 16, stack_frames: 3, dropout: 0.1}
training: {schedule: fixed, init: torch, grad_clip: 5.0, num_epochs: 2, max_duration: 8, optimizer: adam, lr: 0.003, weight_noise_std: 0.0,
           checkpoint_every_batches: 2, num_workers: 1}
decoding: {ctc: [greedy, prefix_beam], beams: [4], splits: [test]}
"""
#: Two cores (what CI has); stages 0-8 and the reports of stage 9 that the tests compare: its sensitivity figure
#: needs a model that has learnt to emit speech, which these tiny ones have not. Training on one thread: a torch
#: job with more threads than free cores runs many times slower, and the machine is shared (an epoch that takes
#: 1 s alone took 90 s beside another 2-thread training).
RUN_ARGS = ["--cores", "2", "--stop-stage", "8"]
SNAKEMAKE_ARGS = ["RESULTS.md", "exp/ctc/RESULTS.md", "exp/ctc/training.png", "--set-threads", "train_ctc=1"]


class Recipe:
    """run.sh on one work folder with one extra config."""

    def __init__(self, work: Path, config: Path):
        self.work, self.config = work, config

    def command(self, *args: str, snakemake: List[str] = ()) -> List[str]:
        """run.sh with ``args``, and ``snakemake`` options after its ``--``."""
        return [str(RUN_SH), "--config", str(self.config), "--dir", str(self.work), *RUN_ARGS, *args,
                "--", *SNAKEMAKE_ARGS, *snakemake]

    def start(self, log: Path, *args: str) -> subprocess.Popen:
        """Start a run in its own session, so that its whole process group can be killed at once. Its output
        goes to a file: an unread pipe fills up and stalls the run."""
        with open(log, "ab") as out:
            return subprocess.Popen(self.command(*args), stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def run(self, *args: str, snakemake: List[str] = (), timeout: float = RUN_TIMEOUT
            ) -> subprocess.CompletedProcess:
        return run_group(self.command(*args, snakemake=snakemake), timeout)


def load_features(cut, work: Path) -> np.ndarray:
    """Feature paths in the cut manifests are relative to the run's folder."""
    cut.features.storage_path = str(work / cut.features.storage_path)
    return cut.load_features()


def results_without_rtf(work: Path) -> List[List[str]]:
    rows = [line.split("|") for line in (work / "RESULTS.md").read_text().splitlines() if line.startswith("|")]
    rtf = [cell.strip() for cell in rows[0]].index("RTF")
    return [row[:rtf] + row[rtf + 1:] for row in rows]

