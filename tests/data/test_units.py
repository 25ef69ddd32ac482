"""Units: sentencepiece trained deterministically, text -> pieces -> ids -> words round trips, the units stage,
and WER/CER scoring in the PER report format."""

import re

import pytest
from lhotse import SupervisionSegment, SupervisionSet
from lhotse.supervision import AlignmentItem

from asrkit.config import UnitsConfig
from asrkit.data.lang import BLANK, TokenTable, prepare_lang
from asrkit.scoring.error_rates import score_utterances, write_report
from asrkit.data.units import PhoneUnits, SentencePieceUnits, load_units, train_sentencepiece, units_from_state

TEXTS = [
    "CHILDREN BEGIN BY LOVING THEIR PARENTS", "ONE IS NOT GETTING WHAT ONE WANTS", "WE ARE NOT A LOVED ORGANIZATION",
    "THE OTHER IS GETTING IT", "DON'T ASK ME TO CARRY AN OILY RAG LIKE THAT", "SHE HAD YOUR DARK SUIT IN GREASY WASH",
    "A RESPECTED ONE IS BETTER THAN A LOVED ONE", "THEIR PARENTS BEGIN BY LOVING THE CHILDREN",
] * 3


def supervision(text, index=0):
    return SupervisionSegment(id=f"utt{index}", recording_id=f"utt{index}", start=0.0, duration=1.0, text=text)


@pytest.mark.parametrize("model_type", ["unigram", "bpe", "char"])
def test_sentencepiece_is_deterministic_and_round_trips(model_type):
    model = train_sentencepiece(TEXTS, model_type, 60, BLANK)
    assert model == train_sentencepiece(TEXTS, model_type, 60, BLANK)
    units = SentencePieceUnits(model)
    processor = units.processor
    assert processor.id_to_piece(0) == BLANK and processor.id_to_piece(1) == "<unk>"
    tokens = TokenTable([processor.id_to_piece(i) for i in range(processor.get_piece_size())])
    assert len(tokens) <= 60
    for text in set(TEXTS) | {"PARENTS LOVE A DARK RAG"}:  # the last: unseen word order
        symbols = units.token_symbols(supervision(text))
        assert BLANK not in symbols
        ids = tokens.encode(symbols)
        assert 0 not in ids and ids == processor.encode(text)
        assert units.scored(tokens.decode(ids)) == text.split() == units.reference(supervision(text))
    unseen = units.token_symbols(supervision("A JUMBO QUAY"))  # J and Q are not in the training texts
    assert "<unk>" in unseen and tokens.encode(unseen)


def test_sentencepiece_units_survive_a_checkpoint_state():
    units = SentencePieceUnits(train_sentencepiece(TEXTS, "unigram", 50, BLANK))
    again = units_from_state(units.state())
    text = "WE ARE NOT LOVING IT"
    assert again.token_symbols(supervision(text)) == units.token_symbols(supervision(text))
    assert again.metrics == ("WER", "CER")
    pieces = units.token_symbols(supervision(text))
    times = [0.1 * i for i in range(len(pieces))]
    timed = units.timed(pieces, times)
    assert [word for word, _ in timed] == text.split()
    assert timed[0][1] == 0.0 and all(t in times for _, t in timed)


def test_units_stage_writes_model_and_tokens(tmp_path):
    supervisions = tmp_path / "supervisions.jsonl.gz"
    SupervisionSet.from_segments([supervision(t, i) for i, t in enumerate(TEXTS)]).to_file(supervisions)
    options = UnitsConfig.from_dict({"type": "sentencepiece", "model_type": "bpe", "vocab_size": 40})
    prepare_lang(tmp_path / "lang", options, supervisions)
    tokens = TokenTable.load(tmp_path / "lang" / "tokens.txt")
    units = load_units(options, tmp_path / "lang")
    assert tokens.symbols[0] == BLANK and len(tokens) == units.processor.get_piece_size()
    first = (tmp_path / "lang" / "bpe.model").read_bytes()
    prepare_lang(tmp_path / "lang", options, supervisions)
    assert (tmp_path / "lang" / "bpe.model").read_bytes() == first
    with pytest.raises(ValueError, match="training supervisions"):
        prepare_lang(tmp_path / "other", options)
    with pytest.raises(ValueError, match="no sentencepiece model"):
        load_units(options, tmp_path / "other")


def test_phone_units_fold_to_39_for_scoring():
    units = PhoneUnits(48)
    assert units.scored(["cl", "vcl", "ix", "sil"]) == ["sil", "sil", "ih", "sil"]
    assert units.is_silence("epi") and not units.is_silence("iy")
    assert units_from_state(units.state()).num_phones == 48


def timit_supervision(phones):
    """A supervision as stage 1 writes it: the .PHN's labels, q included, as its phone alignment."""
    items = [AlignmentItem(symbol=p, start=0.1 * i, duration=0.1) for i, p in enumerate(phones)]
    return SupervisionSegment(id="utt", recording_id="utt", start=0.0, duration=0.1 * len(phones), text="see",
                              alignment={"phone": items})


@pytest.mark.parametrize("num_phones,tokens", [
    (61, ["h#", "s", "q", "ix", "pcl", "h#"]),
    (60, ["h#", "s", "ix", "pcl", "h#"]),
    (48, ["sil", "s", "ix", "cl", "sil"]),
])
def test_phone_units_choose_the_training_labels_from_the_corpus_labels(num_phones, tokens):
    """The manifests' alignments hold TIMIT's 61 labels; the units make each training set of them, and every
    set scores the same 39-phone reference, q deleted."""
    units = units_from_state(PhoneUnits(num_phones).state())
    supervision = timit_supervision(["h#", "s", "q", "ix", "pcl", "h#"])
    assert units.token_symbols(supervision) == tokens
    assert units.reference(supervision) == units.scored(tokens) == ["sil", "s", "ih", "sil", "sil"]


def test_q_is_deleted_from_61_phone_hypotheses_and_is_not_silence():
    units = PhoneUnits(61)
    assert units.scored(["h#", "q", "iy", "q"]) == units.scored(["h#", "iy"]) == ["sil", "iy"]
    assert not units.is_silence("q") and units.is_silence("h#")


def test_wer_and_cer_reports_in_the_per_format(tmp_path):
    units = SentencePieceUnits(train_sentencepiece(TEXTS, "unigram", 50, BLANK))
    refs = {"a": "THE CAT SAT".split(), "b": "ON THE MAT".split()}
    hyps = {"a": "THE BAT SAT DOWN".split(), "b": "ON MAT".split()}
    views = {name: ({u: units.scoring_views(r)[name] for u, r in refs.items()},
                    {u: units.scoring_views(h)[name] for u, h in hyps.items()}) for name in units.metrics}
    wer = score_utterances(*views["WER"])
    cer = score_utterances(*views["CER"])
    # WER: a sub (CAT->BAT), an ins (DOWN), a del (THE) over 6 words
    assert (wer.totals.substitutions, wer.totals.insertions, wer.totals.deletions, wer.totals.ref_count) == (1, 1, 1, 6)
    # CER over the letters without spaces: C->B, +DOWN (4 ins), -THE (3 del) over 9 + 8 letters
    assert (cer.totals.substitutions, cer.totals.insertions, cer.totals.deletions, cer.totals.ref_count) == (1, 4, 3, 17)
    for name, report in (("WER", wer), ("CER", cer)):
        path = tmp_path / f"{name.lower()}.txt"
        write_report(report, path, f"test, {name}", unit=name)
        first = path.read_text().splitlines()[0]
        match = re.fullmatch(rf"%{name} (\d+\.\d\d) \[ (\d+) / (\d+), (\d+) ins, (\d+) del, (\d+) sub \]", first)
        assert match and float(match[1]) == pytest.approx(report.totals.rate, abs=0.005)
        assert int(match[2]) == report.totals.errors and int(match[3]) == report.totals.ref_count
