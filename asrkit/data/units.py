"""What a recipe recognises: TIMIT phones, or sentencepiece subwords of words.

A :class:`Units` turns a supervision into the token symbols a model is trained on, and the token symbols a
model outputs back into what is scored: 39 folded phones (PER), or words (WER, plus CER on their letters).
The config's ``units`` section chooses them; stage 3 (:mod:`asrkit.data.lang`) writes their token table, and a
trained ``model.pt`` stores :meth:`Units.state`, so that decoding and transcription need nothing else.
"""

import io
import logging
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple

import sentencepiece
from lhotse import SupervisionSegment

from asrkit.config import UnitsConfig
from asrkit.data.phones import CORPUS_PHONES, fold, phone_set

#: the phones scoring folds to (Lee & Hon 1989)
SCORING_PHONES = 39
#: the sentencepiece model that stage 3 trains, in the lang folder beside tokens.txt
SENTENCEPIECE_MODEL = "bpe.model"
#: sentencepiece's mark of a piece that starts a word
WORD_START = "\u2581"


class PhoneUnits:
    """TIMIT phones from the supervisions' phone alignments (all 61 labels): trained on 61, 60 (q deleted) or
    48 (folded); scored on 39 (folded, q deleted). The label set is chosen here, where tokens are made, so that
    changing it needs no new manifests."""

    #: the error rates a scoring reports, the first one chooses the best model
    metrics = ("PER",)

    def __init__(self, num_phones: int):
        self.num_phones = num_phones

    def token_symbols(self, supervision: SupervisionSegment) -> List[str]:
        """The phones of one supervision in the training phone set."""
        return fold(self._phones(supervision), CORPUS_PHONES, self.num_phones)

    def reference(self, supervision: SupervisionSegment) -> List[str]:
        """The scored reference: the 39 folded phones (q deleted)."""
        return fold(self._phones(supervision), CORPUS_PHONES, SCORING_PHONES)

    @staticmethod
    def _phones(supervision: SupervisionSegment) -> List[str]:
        """The corpus's labels of one supervision's phone alignment."""
        if not supervision.alignment or "phone" not in supervision.alignment:
            raise ValueError(f"utterance {supervision.id} has no phone alignment: phone units read the TIMIT "
                             f"phones of a supervision's alignment (manifests imported from a Kaldi data "
                             f"directory have text only: use sentencepiece units for them)")
        return [item.symbol for item in supervision.alignment["phone"]]

    def scored(self, symbols: Sequence[str]) -> List[str]:
        """Token symbols a model emitted -> the scored sequence (39 folded phones; q deleted)."""
        return fold(symbols, self.num_phones, SCORING_PHONES)

    def scoring_views(self, scored: List[str]) -> Dict[str, List[str]]:
        """The label sequence each metric scores: PER scores the folded phones themselves."""
        return {"PER": scored}

    def confusion_labels(self, report_labels: Iterable[str]) -> List[str]:
        """The rows and columns of the confusion-matrix figure: all 39 scoring phones."""
        return phone_set(SCORING_PHONES)

    def is_silence(self, symbol: str) -> bool:
        """Silence, pauses and closures: all fold to the scored phone ``sil`` (q, which scoring deletes, is
        speech: a glottal stop)."""
        return self.scored([symbol]) == ["sil"]

    def timed(self, symbols: Sequence[str], times: Sequence[float]) -> List[Tuple[str, float]]:
        """What a transcript shows: each phone with the time it was emitted."""
        return list(zip(symbols, times))

    def state(self) -> Dict[str, Any]:
        return {"type": "phones", "phone_set": self.num_phones}


class SentencePieceUnits:
    """Sentencepiece pieces of the supervisions' text; scored as words (WER) and their letters (CER)."""

    metrics = ("WER", "CER")

    def __init__(self, model_proto: bytes):
        self.model_proto = model_proto
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)

    def token_symbols(self, supervision: SupervisionSegment) -> List[str]:
        """The pieces of the transcript; a character the training transcripts lack becomes ``<unk>`` (through
        the ids: ``out_type=str`` would keep it as a piece that the token table does not have)."""
        return [self.processor.id_to_piece(i) for i in self.processor.encode(supervision.text)]

    def reference(self, supervision: SupervisionSegment) -> List[str]:
        """The scored reference: the words of the transcript."""
        return supervision.text.split()

    def scored(self, symbols: Sequence[str]) -> List[str]:
        """Pieces -> words (sentencepiece joins them and turns its word marks into spaces)."""
        return self.processor.decode_pieces(list(symbols)).split()

    def scoring_views(self, scored: List[str]) -> Dict[str, List[str]]:
        """WER on the words; CER on their characters, spaces left out (as icefall's CER)."""
        return {"WER": scored, "CER": list("".join(scored))}

    def confusion_labels(self, report_labels: Iterable[str]) -> List[str]:
        """The figure shows the character confusions (a word matrix would be too large to read)."""
        return sorted(set(report_labels))

    def is_silence(self, symbol: str) -> bool:
        return False  # pieces carry no silence

    def timed(self, symbols: Sequence[str], times: Sequence[float]) -> List[Tuple[str, float]]:
        """Words, each with the emission time of its first piece."""
        words: List[Tuple[str, float]] = []
        for symbol, time in zip(symbols, times):
            if symbol.startswith(WORD_START) or not words:
                words.append((symbol.lstrip(WORD_START), time))
            else:
                words[-1] = (words[-1][0] + symbol, words[-1][1])
        return [(word, time) for word, time in words if word]

    def state(self) -> Dict[str, Any]:
        return {"type": "sentencepiece", "model": self.model_proto}


Units = PhoneUnits | SentencePieceUnits


def units_from_state(state: Dict[str, Any]) -> Units:
    """The units stored in a checkpoint (:meth:`Units.state`)."""
    if state["type"] == "phones":
        return PhoneUnits(state["phone_set"])
    if state["type"] == "sentencepiece":
        return SentencePieceUnits(state["model"])
    raise ValueError(f"unknown units type {state['type']!r}: expected phones or sentencepiece")


def load_units(units: UnitsConfig, lang_dir: Path) -> Units:
    """The units of the config's ``units`` section, with what stage 3 wrote to ``lang_dir``."""
    if units.type == "phones":
        return PhoneUnits(units.phone_set)
    model = Path(lang_dir) / SENTENCEPIECE_MODEL
    if not model.is_file():
        raise ValueError(f"{model}: no sentencepiece model (stage 3 writes it)")
    return SentencePieceUnits(model.read_bytes())


def train_sentencepiece(texts: List[str], model_type: str, vocab_size: int, blank: str) -> bytes:
    """A sentencepiece model trained on ``texts``, serialised; the same texts give the same bytes.

    Piece 0 is ``blank`` (a user symbol no text contains) and 1 is ``<unk>``, so that sentencepiece ids are
    the token ids, blank first. ``vocab_size`` (with blank and unk) is an upper bound: a small corpus may
    have fewer pieces, and characters are as many as the texts hold.
    """
    if not texts:
        raise ValueError("no training transcripts to train sentencepiece on")
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, model_type=model_type, vocab_size=vocab_size,
        user_defined_symbols=[blank], unk_id=1, bos_id=-1, eos_id=-1, pad_id=-1,
        character_coverage=1.0, hard_vocab_limit=False, normalization_rule_name="identity",
        num_threads=1, minloglevel=2)  # one thread: the pieces must not depend on scheduling
    logging.info(f"sentencepiece {model_type} model trained on {len(texts)} transcripts")
    return model.getvalue()
