"""TIMIT's phone sets and foldings (asrkit/data/phones.py): 61 labels with q, 60 without, Lee & Hon's 48 and 39,
as Kaldi's egs/timit map gives them; q is deleted by every folding below 61."""

from importlib import resources

import pytest

from asrkit.data.phones import MAP_FILE, PHONE_SETS, TIMIT_LABELS, fold, folding_map, phone_set


def kaldi_map():
    """The map file read as Kaldi's timit_norm_trans.pl reads it: ``60 48 39`` per line, q alone (no labels)."""
    rows = [line.split("\t") for line in resources.files("asrkit.data").joinpath(MAP_FILE).read_text().splitlines()]
    assert [row for row in rows if len(row) != 3] == [["q"]]
    return {row[0]: (row[1], row[2]) for row in rows if len(row) == 3}


def test_phone_sets_have_their_sizes_and_61_is_60_with_q():
    assert [len(phone_set(n)) for n in PHONE_SETS] == list(PHONE_SETS)
    assert "q" in phone_set(61) and set(phone_set(61)) == TIMIT_LABELS
    assert set(phone_set(61)) - set(phone_set(60)) == {"q"}
    assert "q" not in phone_set(48) and "q" not in phone_set(39)
    with pytest.raises(ValueError, match="unknown phone set size 62"):
        phone_set(62)


def test_folding_61_deletes_q_and_follows_kaldis_map_for_the_other_60():
    kaldi = kaldi_map()
    assert len(kaldi) == 60 and set(kaldi) == set(phone_set(60))
    for target, column in ((48, 0), (39, 1)):
        mapping = folding_map(61, target)
        assert mapping.pop("q") is None
        assert mapping == {p60: row[column] for p60, row in kaldi.items()}
        assert folding_map(60, target) == mapping
        assert set(mapping.values()) == set(phone_set(target))
    assert folding_map(61, 60) == {**{p: p for p in kaldi}, "q": None}
    # Lee & Hon's merges, as published
    assert fold(["ao", "ix", "ax-h", "zh", "hv", "pcl", "epi", "h#", "em", "nx", "eng"], 61, 39) == \
        ["aa", "ih", "ah", "sh", "hh", "sil", "sil", "sil", "m", "n", "ng"]


def test_fold_leaves_q_out_below_61_only():
    phones = ["h#", "s", "q", "iy", "q", "h#"]
    assert fold(phones, 61, 61) == phones
    assert fold(phones, 61, 60) == ["h#", "s", "iy", "h#"]
    assert fold(phones, 61, 48) == fold(fold(phones, 61, 60), 60, 48) == ["sil", "s", "iy", "sil"]
    assert fold(phones, 61, 39) == fold(fold(phones, 61, 48), 48, 39) == ["sil", "s", "iy", "sil"]
    with pytest.raises(ValueError, match="phone 'q' is not in the 60-phone set"):
        fold(phones, 60, 39)
    with pytest.raises(ValueError, match="cannot fold a 48-phone set to 60 phones"):
        fold(["sil"], 48, 60)


def test_folding_through_48_equals_folding_to_39_directly():
    for label in phone_set(61):
        assert fold(fold([label], 61, 48), 48, 39) == fold([label], 61, 39)
