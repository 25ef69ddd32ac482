"""What a recipe run did, printed when it ends: the time of each stage, read from Snakemake's log, RESULTS.md and
each model's result (its decoding chosen on dev).

Snakemake logs a job's start (``[date]`` then ``rule <name>:`` ... ``jobid: N``) and its end (``[date]`` then
``Finished jobid: N``); the stage of a rule comes from :data:`asrkit.workflow.stages.STAGES`. Jobs of one stage
can run side by side, and stages overlap (CTC decodes while PRETRANS trains), so each stage shows both its wall
time (first start to last end) and its jobs' summed time.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from asrkit.scoring.results import read_results
from asrkit.workflow.stages import RECIPE_MODELS, STAGES

_TIMESTAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_JOB_START = re.compile(r"^(?:local)?rule (\w+):$")
_JOB_ID = re.compile(r"^\s+jobid: (\d+)$")
_JOB_END = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


@dataclass
class Job:
    rule: str
    start: datetime
    end: Optional[datetime] = None


def stage_of_rule() -> Dict[str, int]:
    """Rule name -> stage number, for every rule of the stage table (the per-model training rules included)."""
    stages = {rule: stage.number for stage in STAGES for rule in stage.rules}
    stages.update({f"train_{model.name}": model.stage for model in RECIPE_MODELS.values()})
    return stages


def read_jobs(log_text: str) -> List[Job]:
    """The jobs a Snakemake log started, with their start and (if they finished) end times."""
    jobs: Dict[int, Job] = {}
    stamp: Optional[datetime] = None
    pending_rule: Optional[str] = None
    for line in log_text.splitlines():
        if match := _TIMESTAMP.match(line):
            stamp = datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
        elif (match := _JOB_START.match(line)) and stamp is not None:
            pending_rule = match.group(1)
        elif (match := _JOB_ID.match(line)) and pending_rule is not None:
            jobs[int(match.group(1))] = Job(pending_rule, stamp)
            pending_rule = None
        elif (match := _JOB_END.match(line)) and int(match.group(1)) in jobs:
            jobs[int(match.group(1))].end = stamp
    return list(jobs.values())


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} m {int(seconds % 60):02d} s"


def stage_times_table(jobs: List[Job]) -> str:
    """A Markdown table: per stage, its jobs, wall time and summed job time; then the whole run's wall time."""
    stages = stage_of_rule()
    does = {stage.number: stage.does for stage in STAGES}
    finished = [job for job in jobs if job.end is not None and job.rule in stages]
    if not finished:
        return ""
    lines = ["| stage | what | jobs | wall | job time |", "| --- | --- | --- | --- | --- |"]
    for number in sorted({stages[job.rule] for job in finished}):
        of_stage = [job for job in finished if stages[job.rule] == number]
        wall = (max(job.end for job in of_stage) - min(job.start for job in of_stage)).total_seconds()
        busy = sum((job.end - job.start).total_seconds() for job in of_stage)
        lines.append(f"| {number} | {does[number]} | {len(of_stage)} | {_minutes(wall)} | {_minutes(busy)} |")
    total = (max(job.end for job in finished) - min(job.start for job in finished)).total_seconds()
    return "\n".join(lines) + f"\n\nThe run's jobs took {_minutes(total)} from the first start to the last end.\n"


def print_summary(snakemake_logs: Sequence[Union[str, Path]], results: Union[str, Path]) -> None:
    """Print the stage times of the run logged in ``snakemake_logs`` (Snakemake's log files of this run: one,
    or none when logging to a file is off) if it ran any job, then ``results``."""
    for snakemake_log in snakemake_logs:
        table = stage_times_table(read_jobs(Path(snakemake_log).read_text()))
        if table:
            print(f"\nStage times of this run (from {snakemake_log}):\n\n{table}")
    if Path(results).exists():
        print(f"{results}:\n\n{Path(results).read_text()}")
        print(results_summary(read_results(results)))


def results_summary(chosen: Dict[str, Tuple[str, str]]) -> str:
    """The lines that close a run: each model's result, the test error rate of its decoding chosen on dev."""
    if not chosen:
        return ""
    lines = [f"  {model}: {value} ({decoding})" for model, (decoding, value) in chosen.items()]
    return ("Each model's result, test error rate of the decoding of lowest dev error rate (chosen on dev; "
            "Graves et al. 2013 compare at beam 100):\n" + "\n".join(lines) + "\n")
