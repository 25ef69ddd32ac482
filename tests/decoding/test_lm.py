"""Token LMs: the n-gram estimation and ARPA files (checked against kenlm), and shallow fusion in the beam searches."""

import math
import random
from pathlib import Path

import pytest
import torch

from asrkit.data.arpa import BOS, EOS, UNK, ArpaLm, read_arpa, write_arpa
from asrkit.decoding.decode import load_neural_lm
from asrkit.search.ctc_search import ctc_prefix_beam_search, ctc_prefix_beam_search_batch_nbest
from asrkit.search.lm import START, NeuralLm, NgramLm, ShallowFusion
from asrkit.search.searches import search
from asrkit.search.transducer_search import beam_search, beam_search_batch_nbest, modified_beam_search
from asrkit.model.decoder import Decoder
from asrkit.model.joiner import Joiner
from asrkit.model.transducer import Transducer
from asrkit.training.ngram_lm import witten_bell
from random_transducer import make_model, random_encoder_batch

kenlm = pytest.importorskip("kenlm")  # a dev dependency (pyproject.toml): the reference ARPA reader

SYMBOLS = ["<blk>", "aa", "b", "ch", "d", "eh"]  # a token table: blank, then the phones


def random_transcripts(count: int, seed: int = 0):
    """Phone strings with some structure (b is mostly followed by aa), so that a trigram differs from a bigram;
    eh never occurs: the LM must still give it a probability."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        words = []
        for _ in range(rng.randint(1, 12)):
            words.append("aa" if words and words[-1] == "b" and rng.random() < 0.8 else rng.choice(SYMBOLS[1:5]))
        sentences.append(words)
    return sentences


@pytest.fixture(scope="module", params=[2, 3, 4])  # kenlm reads no unigram LM
def arpa_file(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lm") / f"{request.param}gram.arpa"
    write_arpa(witten_bell(random_transcripts(200), SYMBOLS[1:], request.param), path)
    return path


def test_witten_bell_probabilities_sum_to_one_in_every_context(arpa_file):
    lm = read_arpa(arpa_file)
    predicted = SYMBOLS[1:] + [EOS, UNK]
    contexts = {ngram[:-1] for ngram in lm.entries} | {(BOS,), (BOS, "b"), ("eh", "eh")}
    for context in contexts:
        total = sum(10 ** lm.log10_prob(context, word) for word in predicted)
        assert total == pytest.approx(1.0, abs=1e-6), context
    assert lm.log10_prob(("b",), "eh") > -10  # never seen, still probable


def test_kenlm_reads_the_arpa_file_with_our_log_probabilities(arpa_file):
    """kenlm (SRILM's and Kaldi's reader's twin) loads the file and scores every word of held-out sentences as our
    reader does, to float32 precision (kenlm stores float32)."""
    ours = read_arpa(arpa_file)
    theirs = kenlm.Model(str(arpa_file))
    assert theirs.order == ours.order
    for words in random_transcripts(30, seed=1) + [["eh", "eh", "b"], []]:
        padded = [BOS, *words, EOS]
        expected = [ours.log10_prob(padded[max(0, i - ours.order + 1):i], padded[i]) for i in range(1, len(padded))]
        got = [log_prob for log_prob, _, _ in theirs.full_scores(" ".join(words), bos=True, eos=True)]
        assert got == pytest.approx(expected, abs=1e-5)
        assert theirs.score(" ".join(words)) == pytest.approx(ours.sentence_log10_prob(words), abs=1e-4)


def test_the_searches_lm_scores_are_kenlms(arpa_file):
    """What the searches add (NgramLm's scorer, natural log, </s> in the blank column) along a sentence."""
    theirs = kenlm.Model(str(arpa_file))
    scorer = NgramLm.load(arpa_file, SYMBOLS).scorer()
    words = ["b", "aa", "ch", "b", "eh", "d"]
    state, ours = START, []
    for word in words:
        ours.append(scorer.log_probs([state])[0, SYMBOLS.index(word)])
        state = scorer.next_states([state], [SYMBOLS.index(word)])[0]
    ours.append(scorer.log_probs([state])[0, 0])  # the end of the sentence
    got = [log_prob * math.log(10) for log_prob, _, _ in theirs.full_scores(" ".join(words))]
    assert ours == pytest.approx(got, abs=1e-4)


def test_arpa_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-0.3\taa\n\\end\\\n")
    with pytest.raises(ValueError, match=r"bad.arpa: \\data\\ announces 2 1-grams, the file lists 1"):
        read_arpa(bad)
    bad.write_text("hello\n")
    with pytest.raises(ValueError, match="bad.arpa: no .data. section"):
        read_arpa(bad)


# ------------------------------------------------------------------------------------------ shallow fusion


def fusions(tmp_path: Path, vocab: int, weight: float, bonus: float):
    """An n-gram LM (a trigram over the symbols) and a random neural phone LM, each with these weights."""
    symbols = [f"p{i}" if i else "<blk>" for i in range(vocab)]
    rng = random.Random(3)
    sentences = [[rng.choice(symbols[1:]) for _ in range(rng.randint(1, 8))] for _ in range(50)]
    write_arpa(witten_bell(sentences, symbols[1:], 3), tmp_path / "3gram.arpa")
    torch.manual_seed(4)
    neural = NeuralLm(Decoder(vocab, embedding_dim=4, hidden_size=8))
    return {"ngram": ShallowFusion(NgramLm.load(tmp_path / "3gram.arpa", symbols), weight, bonus),
            "neural": ShallowFusion(neural, weight, bonus)}


@pytest.mark.parametrize("lm", ["ngram", "neural"])
def test_lm_weight_zero_changes_no_search(tmp_path, lm):
    """With weight and bonus 0 each search returns exactly what it returns without an LM: labels and scores."""
    fusion = fusions(tmp_path, 6, 0.0, 0.0)[lm]
    model = make_model(vocab=6, seed=1, blank_bias=2.0).eval()
    encoder_out, lens = random_encoder_batch(model, [9, 14, 5, 11], seed=5)
    for beam in (2, 5):
        assert beam_search_batch_nbest(model, encoder_out, lens, beam, fusion=fusion) == \
            beam_search_batch_nbest(model, encoder_out, lens, beam)
        assert modified_beam_search(model, encoder_out, lens, beam, fusion=fusion) == \
            modified_beam_search(model, encoder_out, lens, beam)
        log_probs = torch.randn(4, 14, 6, generator=torch.Generator().manual_seed(beam)).log_softmax(-1)
        assert ctc_prefix_beam_search_batch_nbest(log_probs, lens, beam, fusion=fusion) == \
            ctc_prefix_beam_search_batch_nbest(log_probs, lens, beam)


@pytest.mark.parametrize("lm", ["ngram", "neural"])
def test_a_weighted_lm_changes_the_searches(tmp_path, lm):
    """The converse of the test above, so that it could fail: a weighted LM moves some hypothesis."""
    fusion = fusions(tmp_path, 6, 2.0, 0.5)[lm]
    model = make_model(vocab=6, seed=1, blank_bias=2.0).eval()
    encoder_out, lens = random_encoder_batch(model, [9, 14, 5, 11], seed=5)
    assert beam_search(model, encoder_out, lens, 4, fusion=fusion) != beam_search(model, encoder_out, lens, 4)
    assert modified_beam_search(model, encoder_out, lens, 4, fusion=fusion) != \
        modified_beam_search(model, encoder_out, lens, 4)


# A case built by hand: at the first of three frames the network says b (p2) with 0.5, ch (p3) with 0.45, blank
# with 0.05; every other frame is blank. An LM that prefers ch 17 to 1 over b (whatever came before) makes ch win.
FIRST_FRAME = {0: 0.05, 2: 0.5, 3: 0.45}
HAND_SYMBOLS = ["<blk>", "aa", "b", "ch"]


def hand_built_lm(tmp_path: Path) -> NgramLm:
    probs = {"aa": 0.04, "b": 0.05, "ch": 0.85, EOS: 0.05, UNK: 0.01}
    entries = {(w,): (math.log10(p), 0.0) for w, p in probs.items()}
    arpa = ArpaLm(2, {**entries, (BOS,): (-99.0, 0.0), (BOS, "ch"): entries[("ch",)]})  # a bigram: kenlm's least
    write_arpa(arpa, tmp_path / "hand.arpa")
    assert kenlm.Model(str(tmp_path / "hand.arpa")).score("ch") == pytest.approx(math.log10(0.85 * 0.05), abs=1e-5)
    return NgramLm.load(tmp_path / "hand.arpa", HAND_SYMBOLS)


def frame_log_probs() -> torch.Tensor:
    """(3, 4) the network's log-probabilities at the three frames."""
    probs = torch.full((3, 4), 1e-4)
    probs[1:, 0] = 1.0
    for token, p in FIRST_FRAME.items():
        probs[0, token] = p
    return (probs / probs.sum(dim=1, keepdim=True)).log()


def hand_built_transducer() -> Transducer:
    """A transducer whose joiner gives :func:`frame_log_probs` before any label and blank (almost surely) after
    one: the encoder output is taken as the joiner's projected input, and the prediction network's output is 0 at
    the start and positive after a label, which pushes blank's logit to the top."""
    vocab = len(HAND_SYMBOLS)
    decoder = Decoder(vocab, embedding_dim=1, hidden_size=1)
    joiner = Joiner(vocab, 1, vocab, vocab)
    with torch.no_grad():
        for parameter in [*decoder.parameters(), *joiner.parameters()]:
            parameter.zero_()
        decoder.embedding.weight[1:] = 10.0  # a label's embedding opens the cell's input (gate g)
        decoder.lstm.weight_ih_l0[2] = 1.0
        joiner.encoder_proj.weight.copy_(torch.eye(vocab))
        joiner.decoder_proj.weight[0, 0] = 100.0  # after a label: tanh(...) = 1 for blank
        joiner.output_linear.weight.copy_(10 * torch.eye(vocab))
    encoder = torch.nn.Identity()
    encoder.output_dim = vocab
    return Transducer(encoder, decoder, joiner, vocab).eval()


def transducer_input() -> torch.Tensor:
    """(1, 3, 4) encoder frames whose joiner logits (10 tanh(x)) are the log-probabilities plus a constant."""
    logits = frame_log_probs() + 2.0  # within (-10, 10)
    return torch.atanh(logits / 10).unsqueeze(0)


@pytest.mark.parametrize("search", ["prefix_beam", "beam", "modified_beam"])
def test_a_strong_lm_makes_its_preferred_phone_win(tmp_path, search):
    fusion = ShallowFusion(hand_built_lm(tmp_path), weight=1.0, bonus=0.0)
    lens = torch.tensor([3])

    def decode(with_lm):
        chosen = fusion if with_lm else None
        if search == "prefix_beam":
            return ctc_prefix_beam_search(frame_log_probs().unsqueeze(0), lens, beam=4, fusion=chosen)[0]
        model = hand_built_transducer()
        if search == "beam":
            return beam_search(model, transducer_input(), lens, beam=4, fusion=chosen)[0]
        return modified_beam_search(model, transducer_input(), lens, beam=4, fusion=chosen)[0]

    assert decode(with_lm=False) == [2]  # b, the network's choice
    assert decode(with_lm=True) == [3]  # ch, the LM's
    # with the LM's weight 0 the network's choice stands again
    fusion = ShallowFusion(fusion.lm, weight=0.0, bonus=0.0)
    assert decode(with_lm=True) == [2]


def test_the_bonus_lengthens_hypotheses(tmp_path):
    """A large insertion bonus makes the searches prefer more labels."""
    lm = fusions(tmp_path, 6, 0.0, 0.0)["ngram"].lm
    log_probs = torch.randn(2, 20, 6, generator=torch.Generator().manual_seed(0)).log_softmax(-1)
    lens = torch.tensor([20, 17])
    plain = ctc_prefix_beam_search(log_probs, lens, 5)
    longer = ctc_prefix_beam_search(log_probs, lens, 5, fusion=ShallowFusion(lm, 0.0, 3.0))
    assert all(len(a) > len(b) for a, b in zip(longer, plain))


def test_greedy_search_refuses_an_lm(tmp_path):
    fusion = fusions(tmp_path, 6, 0.5, 0.0)["ngram"]
    model = make_model(vocab=6, seed=1)
    with pytest.raises(ValueError, match="greedy search uses no LM"):
        search(model, "greedy", 1, torch.zeros(1, 4, 5), torch.tensor([4]), fusion)


def test_a_phone_lm_of_other_tokens_is_refused(tmp_path):
    from asrkit.checkpoint import save_checkpoint

    decoder = Decoder(5, embedding_dim=4, hidden_size=8)
    options = {"decoder_embedding_dim": 4, "decoder_hidden_size": 8, "decoder_num_layers": 1}
    save_checkpoint(tmp_path / "model.pt", {"model": decoder.state_dict(), "model_options": options, "vocab_size": 5})
    assert load_neural_lm(tmp_path / "model.pt", 5).decoder.vocab_size == 5
    with pytest.raises(ValueError, match="model.pt: a token LM over 5 tokens cannot score a model of 6"):
        load_neural_lm(tmp_path / "model.pt", 6)
