"""Scoring, the text report, RESULTS.md maintenance and the plots built on the scores."""

import re

import numpy as np
import pytest
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
from lhotse.audio import AudioSource
from lhotse.supervision import AlignmentItem

from asrkit.data.phones import fold, phone_set
from asrkit.data.units import PhoneUnits
from asrkit.scoring.hypotheses import write_hyps
from asrkit.scoring.score import score_split
from asrkit.scoring.plots import plot_confusion_matrix, plot_training_curves
from asrkit.scoring.results import read_results, update_results_table
from asrkit.scoring.score import write_results
from asrkit.workflow.run_summary import results_summary
from asrkit.scoring.error_rates import (
    DELETION,
    EPS,
    INSERTION,
    ErrorCounts,
    confusion_matrix,
    format_totals,
    score_utterances,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: the columns of a phone recipe's RESULTS.md (asrkit.scoring.score passes its own)
COLUMNS = ["model", "decoding", "PER", "ins", "del", "sub", "params", "epochs", "RTF"]


@pytest.fixture
def report():
    refs = {
        "sub": "sil ah b sil".split(),  # ah -> aa
        "ins": "sil k t sil".split(),  # extra s after t
        "del": "sil iy n sil".split(),  # n deleted
        "ok": "sil m sil".split(),
    }
    hyps = {
        "sub": "sil aa b sil".split(),
        "ins": "sil k t s sil".split(),
        "del": "sil iy sil".split(),
        "ok": "sil m sil".split(),
    }
    return score_utterances(refs, hyps)


def test_counts_one_substitution_insertion_and_deletion(report):
    assert report.totals == ErrorCounts(ref_count=15, insertions=1, deletions=1, substitutions=1)
    assert report.totals.errors == 3
    assert report.totals.rate == pytest.approx(20.0)
    assert report.utterances["sub"].counts == ErrorCounts(4, 0, 0, 1)
    assert report.utterances["ins"].counts == ErrorCounts(4, 1, 0, 0)
    assert report.utterances["del"].counts == ErrorCounts(4, 0, 1, 0)
    assert report.utterances["ok"].counts == ErrorCounts(3, 0, 0, 0)
    assert report.utterances["ins"].pairs == [("sil", "sil"), ("k", "k"), ("t", "t"), (EPS, "s"), ("sil", "sil")]
    assert report.confusions == {("ah", "aa"): 1, (INSERTION, "s"): 1, ("n", DELETION): 1}
    per_label = report.per_label
    assert per_label["ah"].substitutions == 1 and per_label["ah"].ref_count == 1
    assert per_label["n"].deletions == 1
    assert per_label["s"].insertions == 1 and per_label["s"].ref_count == 0
    assert per_label["sil"].ref_count == 8 and per_label["sil"].errors == 0
    assert "aa" not in per_label  # only hypothesised as a substitute: no reference errors of its own


def test_totals_line_format():
    counts = ErrorCounts(ref_count=7215, insertions=150, deletions=420, substitutions=771)
    assert format_totals(counts) == "%PER 18.59 [ 1341 / 7215, 150 ins, 420 del, 771 sub ]"
    assert format_totals(ErrorCounts(4, 0, 1, 0), unit="WER") == "%WER 25.00 [ 1 / 4, 0 ins, 1 del, 0 sub ]"


def test_report_file(report, tmp_path):
    path = tmp_path / "score" / "per.txt"
    write_report(report, path, title="dev, 39 phones", unit="PER")
    lines = path.read_text().splitlines()
    assert lines[0] == "%PER 20.00 [ 3 / 15, 1 ins, 1 del, 1 sub ]"
    assert "# dev, 39 phones" in lines
    block = lines.index("id: ins")
    assert lines[block + 1] == "Scores: (#C #S #D #I) 4 0 0 1"
    assert lines[block + 2] == "ref: sil k t *** sil"
    assert lines[block + 3] == "hyp: sil k t S   sil"
    assert lines[block + 4] == "op:          I"
    sub_block = lines.index("id: sub")
    assert lines[sub_block + 2 : sub_block + 5] == ["ref: sil AH b sil", "hyp: sil AA b sil", "op:      S"]
    label_rows = {line.split()[0]: line.split()[1:] for line in lines if re.match(r"^(ah|n|s|sil) ", line)}
    assert label_rows["ah"] == ["1", "1", "0", "0", "100.00"]
    assert label_rows["n"] == ["1", "0", "1", "0", "100.00"]
    assert label_rows["s"] == ["0", "0", "0", "1", "-"]
    confusions = lines[lines.index("## Top 20 confusions (ref -> hyp)") + 2 :]
    assert confusions == ["     1  <ins> -> s", "     1  ah -> aa", "     1  n -> <del>"]
    assert [p.name for p in path.parent.iterdir()] == ["per.txt"]  # no temporary file left behind


def test_confusion_matrix_sums(report):
    labels = sorted({"sil", "ah", "aa", "b", "k", "t", "s", "iy", "n", "m"})
    matrix = confusion_matrix(report, labels)
    index = {label: i for i, label in enumerate(labels)}
    assert matrix.shape == (len(labels) + 1, len(labels) + 1)
    assert matrix.sum() == report.totals.ref_count + report.totals.insertions
    assert matrix[:-1].sum() == report.totals.ref_count  # every reference label is in exactly one row cell
    assert np.trace(matrix) == report.totals.correct
    assert matrix[-1].sum() == 1 and matrix[-1, index["s"]] == 1  # insertion row
    assert matrix[:, -1].sum() == 1 and matrix[index["n"], -1] == 1  # deletion column
    assert matrix[index["ah"], index["aa"]] == 1
    assert matrix[index["sil"], index["sil"]] == 8
    with pytest.raises(ValueError, match="aa"):
        confusion_matrix(report, [label for label in labels if label != "aa"])


def test_scoring_folded_phones_merges_labels():
    # The caller folds 60 -> 39 first; then ao/aa and the closures/sil no longer count as errors.
    ref60, hyp60 = "h# ao bcl b pau".split(), "h# aa pcl b epi".split()
    report = score_utterances({"u": fold(ref60, 60, 39)}, {"u": fold(hyp60, 60, 39)})
    assert report.totals.errors == 0
    matrix = confusion_matrix(report, phone_set(39))
    assert matrix.shape == (40, 40)
    assert matrix.sum() == 5


def timit_cuts(path, alignments):
    """A cut manifest of utterances whose phone alignments are TIMIT's labels, q included (as stage 1 keeps them)."""
    cuts = []
    for utt, phones in alignments.items():
        recording = Recording(id=utt, sources=[AudioSource(type="file", channels=[0], source=f"{utt}.wav")],
                              sampling_rate=16000, num_samples=16000, duration=1.0)
        items = [AlignmentItem(symbol=p, start=0.1 * i, duration=0.1) for i, p in enumerate(phones)]
        supervision = SupervisionSegment(id=utt, recording_id=utt, start=0.0, duration=1.0, alignment={"phone": items})
        cuts.append(MonoCut(id=utt, start=0.0, duration=1.0, channel=0, recording=recording,
                            supervisions=[supervision]))
    CutSet.from_cuts(cuts).to_file(path)
    return path


def test_q_changes_no_score(tmp_path):
    """Scoring folds to 39 and deletes q from the reference and the hypothesis (Lee & Hon, Kaldi's map): a
    61-phone hypothesis scores as the same one without q, and as a 60-phone model's would."""
    cuts = timit_cuts(tmp_path / "cuts.jsonl.gz", {"u1": "h# s q iy q h#".split(), "u2": "h# q ao r pau".split()})
    with_q = {"u1": "h# q sh iy h#".split(), "u2": "h# aa q r q n epi".split()}  # sub, ins; q in other places
    without_q = {utt: [p for p in phones if p != "q"] for utt, phones in with_q.items()}
    summaries = []
    for name, hyps, num_phones in (("with_q", with_q, 61), ("without_q", without_q, 61), ("60", without_q, 60)):
        write_hyps(hyps, tmp_path / f"hyps_{name}.txt")
        summary = score_split(cuts, tmp_path / f"hyps_{name}.txt", PhoneUnits(num_phones), "t",
                              [tmp_path / f"per_{name}.txt"], tmp_path / f"{name}.json", tmp_path / f"{name}.png", {})
        summaries.append(summary)
    assert summaries[0] == summaries[1] == summaries[2]
    assert (summaries[0]["ref_count"], summaries[0]["sub"], summaries[0]["ins"], summaries[0]["del"]) == (8, 1, 1, 0)
    assert (tmp_path / "per_with_q.txt").read_text() == (tmp_path / "per_without_q.txt").read_text()


def test_mismatched_ids_and_empty_references_are_named():
    with pytest.raises(ValueError, match=r"without a hypothesis \[b\].*without a reference \[c\]"):
        score_utterances({"a": ["x"], "b": ["y"]}, {"a": ["x"], "c": ["y"]})
    with pytest.raises(ValueError, match="empty reference for utterance b"):
        score_utterances({"a": ["x"], "b": []}, {"a": ["x"], "b": ["y"]})
    with pytest.raises(ValueError, match="reserved"):
        score_utterances({"a": ["x"]}, {"a": [EPS]})


def test_empty_hypothesis_is_all_deletions():
    report = score_utterances({"a": ["x", "y"]}, {"a": []})
    assert report.totals == ErrorCounts(2, 0, 2, 0)
    assert report.totals.rate == pytest.approx(100.0)


def _table_rows(path):
    rows = [line for line in path.read_text().splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_results_table_replaces_same_key_and_appends_new_keys_sorted(tmp_path):
    path = tmp_path / "RESULTS.md"
    base = {"model": "blstm5", "PER": 18.634, "ins": 150, "del": 420, "sub": 771, "params": 3822336, "epochs": 20}
    update_results_table(path, dict(base, decoding="greedy", RTF=0.0123), columns=COLUMNS)
    update_results_table(path, dict(base, decoding="beam100", PER=18.1), columns=COLUMNS)
    update_results_table(path, dict(base, model="blstm3", decoding="greedy", PER=19.5), columns=COLUMNS)
    update_results_table(path, dict(base, decoding="beam10", PER=18.3), columns=COLUMNS)
    update_results_table(path, dict(base, decoding="greedy", PER=18.0, RTF=0.02),
                         columns=COLUMNS)  # replaces the first row

    text = path.read_text()
    assert text.startswith("# Results\n\n")
    header = [line for line in text.splitlines() if line.startswith("|")][0]
    assert [cell.strip() for cell in header.strip("|").split("|")] == COLUMNS
    rows = _table_rows(path)
    assert [(row[0], row[1], row[2]) for row in rows] == [
        ("blstm3", "greedy", "19.50"),
        ("blstm5", "beam10", "18.30"),
        ("blstm5", "beam100", "18.10"),
        ("blstm5", "greedy", "18.00"),
    ]
    assert rows[-1][6:] == ["3,822,336", "20", "0.02"]
    assert rows[1][8] == ""  # RTF not given


def test_results_table_keeps_surrounding_text_and_extra_columns(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text(
        "# TIMIT\n\nHand-written notes.\n\n"
        "| model | decoding | PER | lm |\n|---|---|---|---|\n| old | greedy | 20.00 | none |\n"
        "\nFootnote.\n"
    )
    update_results_table(path, {"model": "new", "decoding": "greedy", "PER": 17.25}, columns=COLUMNS)
    text = path.read_text()
    assert text.startswith("# TIMIT\n\nHand-written notes.\n\n|")
    assert text.endswith("\nFootnote.\n")
    rows = _table_rows(path)
    assert rows[0][:3] == ["new", "greedy", "17.25"] and rows[0][-1] == ""
    assert rows[1][:3] == ["old", "greedy", "20.00"] and rows[1][-1] == "none"
    with pytest.raises(ValueError, match="key columns"):
        update_results_table(path, {"model": "x", "PER": 1.0}, columns=COLUMNS)
    with pytest.raises(ValueError, match="bogus"):
        update_results_table(path, {"model": "x", "decoding": "greedy", "bogus": 1}, columns=COLUMNS)


def _summary(split, per, ins):
    return {"model": "CTC", "decoding": "greedy", "split": split, "params": 1000, "epochs": 3, "metrics": ["PER"],
            "PER": per, "ins": ins, "del": 2, "sub": 3, "RTF": 0.01}


def test_results_have_a_heldout_column_only_when_the_heldout_set_is_scored(tmp_path):
    standard = [_summary("dev", 20.0, 1), _summary("test", 21.0, 4)]
    write_results(standard, tmp_path / "standard.md")
    header, _, row = [line for line in (tmp_path / "standard.md").read_text().splitlines() if line.startswith("|")]
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "model", "decoding", "result", "dev PER", "test PER", "ins", "del", "sub", "params", "epochs", "RTF"]
    write_results([_summary("heldout", 35.5, 9), *standard], tmp_path / "heldout.md")
    header, _, row = [line for line in (tmp_path / "heldout.md").read_text().splitlines() if line.startswith("|")]
    cells = dict(zip([c.strip() for c in header.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")]))
    assert list(cells)[:6] == ["model", "decoding", "result", "dev PER", "test PER", "heldout PER"]
    assert (cells["dev PER"], cells["test PER"], cells["heldout PER"], cells["ins"]) == ("20.00", "21.00", "35.50", "4")


def test_each_models_result_is_its_decoding_chosen_on_dev(tmp_path):
    """The result column holds, per model, the test PER of the decoding of lowest dev PER: not the lowest test
    PER (choosing on test), and a rewrite of some rows chooses again over all of them."""
    def decoding(model, name, dev, test):
        return [{**_summary("dev", dev, 0), "model": model, "decoding": name},
                {**_summary("test", test, 0), "model": model, "decoding": name}]

    path = tmp_path / "RESULTS.md"
    write_results([*decoding("CTC", "greedy", 14.0, 10.0), *decoding("CTC", "prefix beam 10", 13.0, 11.0),
                   *decoding("TRANS", "greedy", 12.0, 12.5), *decoding("TRANS", "beam 100", 12.0, 9.0),
                   *decoding("TRANS", "beam 4", 12.5, 8.0)], path)
    marked = {(row[0], row[1]): row[2] for row in _table_rows(path) if row[2]}  # model, decoding, result
    assert marked == {
        ("CTC", "prefix beam 10"): "11.00",  # dev 13 < 14, though greedy's test PER is lower
        ("TRANS", "beam 100"): "9.00"}  # dev ties at 12: the first listed (natural order: beam 100 < greedy)
    assert read_results(path) == {"CTC": ("prefix beam 10", "11.00"), "TRANS": ("beam 100", "9.00")}
    write_results(decoding("CTC", "greedy", 12.9, 10.0), path)  # greedy redecoded, now better on dev
    assert read_results(path)["CTC"] == ("greedy", "10.00")
    assert [row[:3] for row in _table_rows(path) if row[0] == "CTC" and row[2]] == [["CTC", "greedy", "10.00"]]
    assert "chosen on dev" in results_summary(read_results(path))


def test_plots_write_png_files(report, tmp_path):
    history = [
        {"epoch": 1, "train_loss": 3.1, "dev_loss": 2.5, "dev_error_rate": 40.0, "dev_metric": "PER"},
        {"epoch": 2, "train_loss": 2.0, "dev_loss": None, "dev_error_rate": 30.0, "dev_metric": "PER"},
        {"epoch": 3, "train_loss": 1.5},
    ]
    curves = tmp_path / "plots" / "training.png"
    plot_training_curves(history, curves)
    labels = phone_set(39)
    matrix = np.random.default_rng(0).integers(0, 50, size=(40, 40))
    matrix[-1, -1] = 0
    confusions = tmp_path / "plots" / "confusion.png"
    plot_confusion_matrix(matrix, labels, confusions, title="dev, 39 phones")
    for path in (curves, confusions):
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["confusion.png", "training.png"]
    with pytest.raises(ValueError, match="40, 40"):
        plot_confusion_matrix(matrix[:-1], labels, confusions, title="x")
