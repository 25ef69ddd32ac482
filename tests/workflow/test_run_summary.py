"""The summary printed when a recipe run ends: stage times read from Snakemake's log, then RESULTS.md."""

from asrkit.workflow.run_summary import print_summary, read_jobs, stage_times_table

# Two stages: CTC training (one job, 3 min) and decoding (two jobs side by side, 10 s and 20 s, overlapping).
LOG = """Building DAG of jobs...
[Sat Nov 28 09:49:32 2026]
rule train_ctc:
    output: exp/ctc/model.pt
    jobid: 7
    threads: 1
Shell command: python -m asrkit.training.train ...
[Sat Nov 28 09:49:40 2026]
rule phone_lm:
    jobid: 9
[Sat Nov 28 09:52:32 2026]
Finished jobid: 7 (Rule: train_ctc)
1 of 3 steps (33%) done
[Sat Nov 28 09:52:33 2026]
rule decode:
    wildcards: model=ctc, decoding=greedy, split=dev
    jobid: 11
[Sat Nov 28 09:52:35 2026]
rule decode:
    jobid: 12
[Sat Nov 28 09:52:43 2026]
Finished jobid: 11 (Rule: decode)
[Sat Nov 28 09:52:55 2026]
Finished jobid: 12 (Rule: decode)
[Sat Nov 28 09:52:55 2026]
localrule stage_8:
    jobid: 1
[Sat Nov 28 09:52:55 2026]
Finished jobid: 1 (Rule: stage_8)
"""


def test_stage_times_from_the_log():
    jobs = read_jobs(LOG)
    assert [(job.rule, job.end is not None) for job in jobs] == [
        ("train_ctc", True), ("phone_lm", False), ("decode", True), ("decode", True), ("stage_8", True)]
    table = stage_times_table(jobs)
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in table.splitlines()[2:] if "|" in line}
    assert set(rows) == {"4", "8"}  # the unfinished phone LM and the stage targets are left out
    assert rows["4"][2:5] == ["1", "3 m 00 s", "3 m 00 s |"]
    assert rows["8"][2:5] == ["2", "0 m 22 s", "0 m 30 s |"]  # wall: 09:52:33-55; job time 10 s + 20 s
    assert "3 m 23 s from the first start to the last end" in table


def test_summary_prints_times_then_results(tmp_path, capsys):
    log = tmp_path / "snakemake.log"
    log.write_text(LOG)
    results = tmp_path / "RESULTS.md"
    print_summary([log], results)  # no RESULTS.md yet: the times only
    assert "| 4 | train CTC |" in capsys.readouterr().out
    results.write_text("| model | dev PER |\n| --- | --- |\n| CTC | 15.80 |\n")
    log.write_text("Nothing to be done.\n")  # a run with nothing to do prints the results alone
    print_summary([log], results)
    out = capsys.readouterr().out
    assert "Stage times" not in out and "| CTC | 15.80 |" in out
    print_summary([], results)  # Snakemake logging to no file
    assert "| CTC | 15.80 |" in capsys.readouterr().out
