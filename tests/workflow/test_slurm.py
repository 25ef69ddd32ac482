"""The TIMIT recipe on a real SLURM cluster, through profiles/slurm, gives what a local run gives.

A one-node cluster (tests/slurm_cluster.py: Debian's munged, slurmctld and slurmd on localhost) is started for
the module and stopped after it. The tiny-corpus recipe runs through scoring twice, side by side: locally, and
with the SLURM profile, its features in 2 shards per split. Results, models and features must be identical,
every rule that is not a localrule must have been a SLURM job, and the jobs must have got the CPUs, memory
and time limit that the profile asks for.
"""

import re
import subprocess
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch
import yaml
from lhotse import CutSet

from asrkit.checkpoint import load_checkpoint
from slurm_cluster import ClusterUnavailable, SlurmCluster
from process_groups import kill_group
from tiny_recipe import TINY, load_features, results_without_rtf

pytestmark = pytest.mark.slow  # minutes: left out of `make test-fast`

ROOT = Path(__file__).resolve().parents[2]
RUN_SH = ROOT / "recipes" / "timit" / "run.sh"
PROFILE = ROOT / "profiles" / "slurm"

SHARDS = "features: {num_shards: 2}\n"
#: Through scoring: stage 9's sensitivity figure needs a model that has learnt to emit speech (see test_faults).
#: Locally on 2 cores; on the cluster with the profile's cores, so that jobs get the CPUs it asks for.
RUN_ARGS = {"local": ["--cores", "2"], "slurm": ["--profile", str(PROFILE)]}
TARGETS = ["--stop-stage", "8", "--", "RESULTS.md", "exp/ctc/training.png"]
#: the rules that must run as SLURM jobs; all others are localrules
# the n-gram phone LM (stage 5) is made whatever the models: decoding.lm may name it
CLUSTER_RULES = {"demo_corpus", "manifests", "feature_shard", "feature_stats", "train_ctc", "ngram_lm", "decode", "score"}
RUN_TIMEOUT = 900  # seconds; the plugin ignores SIGTERM, so a hung run is SIGKILLed as a process group
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/")


def profile() -> Dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def threads() -> Dict[str, int]:
    """The profile's threads, but one for training, in both runs: torch then computes the same numbers
    locally and on the cluster (a local run caps threads at --cores), and 4 training threads on a shared
    2-core machine would be many times slower."""
    return {**profile()["set-threads"], "train_ctc": 1}


def set_threads() -> List[str]:
    return ["--set-threads", *(f"{rule}={n}" for rule, n in threads().items())]


@pytest.fixture(scope="module")
def cluster():
    try:
        with SlurmCluster() as running:
            yield running
    except ClusterUnavailable as e:
        pytest.skip(f"no SLURM cluster: {e}")


def start(name: str, root: Path, configs: List[Path], snakemake: List[str]) -> subprocess.Popen:
    """run.sh on ``root/name``, its output in ``root/name.log``."""
    log = root / f"{name}.log"
    command = [str(RUN_SH), *(a for c in configs for a in ("--config", str(c))), "--dir", str(root / name),
               *RUN_ARGS[name], *TARGETS, *set_threads(), *snakemake]
    with open(log, "wb") as out:  # a file, not a pipe: an unread pipe would stall the run
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """The same recipe run locally and on the cluster at once (the cluster run mostly waits for polls)."""
    root = tmp_path_factory.mktemp("slurm")
    (root / "tiny.yaml").write_text(TINY)
    (root / "shards.yaml").write_text(SHARDS)
    started = time.monotonic()
    processes = {
        # a short first status check: the plugin then checks every 2 s + 10 s per check that finds nothing new
        "slurm": start("slurm", root, [root / "tiny.yaml", root / "shards.yaml"],
                       ["--slurm-init-seconds-before-status-checks", "2"]),
        "local": start("local", root, [root / "tiny.yaml"], []),
    }
    seconds = {}
    try:
        while len(seconds) < len(processes):
            assert time.monotonic() - started < RUN_TIMEOUT, f"the runs took over {RUN_TIMEOUT} s"
            seconds.update((name, time.monotonic() - started) for name, process in processes.items()
                           if name not in seconds and process.poll() is not None)
            time.sleep(0.5)
    finally:
        for process in processes.values():
            if process.poll() is None:
                kill_group(process)
    for name, process in processes.items():
        output = (root / f"{name}.log").read_text(errors="replace")
        assert process.returncode == 0, f"the {name} run failed:\n{output[-4000:]}\n{cluster.logs()}"
    jobs = SUBMITTED.findall((root / "slurm.log").read_text())
    print(f"cluster idle after {cluster.seconds_to_idle:.1f} s; {len(jobs)} SLURM jobs; "
          f"runs took {seconds['slurm']:.0f} s (SLURM) and {seconds['local']:.0f} s (local)")
    return {"slurm": root / "slurm", "local": root / "local", "jobs": jobs}


def test_cluster_results_equal_local_results(runs):
    slurm, local = runs["slurm"], runs["local"]
    assert results_without_rtf(slurm) == results_without_rtf(local)
    for decoding in ("greedy", "prefix_beam_4"):
        for name in (f"exp/ctc/decode_{decoding}/hyps_test.txt", f"exp/ctc/decode_{decoding}/per_test.txt"):
            assert (slurm / name).read_text() == (local / name).read_text(), name
    on_cluster, at_home = (load_checkpoint(w / "exp/ctc/model.pt")["model"] for w in (slurm, local))
    for name, weights in at_home.items():
        assert torch.equal(on_cluster[name], weights), name


def test_features_in_shards_equal_features_in_one_job(runs):
    slurm, local = runs["slurm"], runs["local"]
    assert sorted(p.name for p in (slurm / "data/features/feats_train").iterdir()) == ["1-of-2", "2-of-2"]
    for split in ("train", "dev", "test"):
        name = f"data/features/cuts_{split}.jsonl.gz"
        sharded, whole = (CutSet.from_file(w / name).to_eager() for w in (slurm, local))
        assert list(sharded.ids) == list(whole.ids)
        for cut in whole:
            np.testing.assert_array_equal(load_features(sharded[cut.id], slurm), load_features(cut, local))
    stats = [torch.load(w / "data/features/stats.pt", weights_only=True) for w in (slurm, local)]
    for key in stats[1]:
        assert torch.equal(stats[0][key], stats[1][key]), key


def test_every_rule_but_the_localrules_ran_as_a_slurm_job(runs):
    rules = [rule for _, rule in runs["jobs"]]
    assert set(rules) == CLUSTER_RULES
    assert rules.count("feature_shard") == 6  # 3 splits x 2 shards


def minutes(time_limit: str) -> int:
    """SLURM's ``[days-]hours:minutes:seconds`` in minutes."""
    days, _, clock = time_limit.rpartition("-")
    hours, mins, _ = map(int, clock.split(":"))
    return (int(days or 0) * 24 + hours) * 60 + mins


@pytest.mark.parametrize("rule", ["feature_shard", "train_ctc", "demo_corpus"])
def test_jobs_got_the_profiles_resources(runs, cluster, rule):
    asked = {**dict(r.split("=") for r in profile()["default-resources"]), **profile()["set-resources"][rule]}
    job_ids = [job for job, name in runs["jobs"] if name == rule]
    assert job_ids
    for job_id in job_ids:
        job = cluster.show_job(job_id)
        assert job["JobState"] == "COMPLETED", job
        assert job["MinMemoryNode"] == f"{asked['mem_mb']}M", job
        assert minutes(job["TimeLimit"]) == int(asked["runtime"]), job
        assert int(job["CPUs/Task"]) == threads().get(rule, 1), job
