"""A recipe's numbered stages and the models it can train: the one table the Snakefile, run.sh and the docs follow.

From a stage number to the code that does it is three hops: the stage's row below names its rules (in
``asrkit/workflow/rules/*.smk``, or the recipe's ``rules/prepare.smk`` for stages 0-1); each rule runs the
``main()`` of the module named in the row; ``main()`` calls the function that does the work.
"""

from dataclasses import dataclass, field
from typing import Dict, Mapping, Tuple


@dataclass(frozen=True)
class Stage:
    """One numbered stage of a recipe (``run.sh --stage N --stop-stage M``)."""

    number: int
    does: str
    rules: Tuple[str, ...]
    #: the module (``python -m``) or the recipe script its rules run
    runs: str


STAGES: Tuple[Stage, ...] = (
    Stage(0, "demo corpus (only when corpus_dir is null)", ("demo_corpus",), "recipes/<recipe>/local/make_demo_corpus.py"),
    Stage(1, "manifests of the train/dev/test sets (lhotse)", ("manifests",), "recipes/<recipe>/local/prepare_*.py"),
    Stage(2, "features (kaldifeat, stored with lhotse), mean/variance from train",
          ("feature_shard", "features", "feature_stats"), "asrkit.data.features"),
    Stage(3, "units: the token table, and the phone folding tables or the sentencepiece model", ("lang",),
          "asrkit.data.lang"),
    Stage(4, "train CTC", ("train_ctc",), "asrkit.training.train"),
    Stage(5, "phone LMs: the n-gram LM of the training transcripts (ARPA, dev perplexity; for decoding.lm ngram), "
             "the prediction network pretrained on the tokens (for PRETRANS and decoding.lm neural)",
          ("ngram_lm", "phone_lm"), "asrkit.training.ngram_lm, asrkit.training.phone_lm"),
    Stage(6, "train TRANS, the RNN transducer (k2's pruned loss)", ("train_transducer",), "asrkit.training.train"),
    Stage(7, "train PRETRANS, the transducer started from CTC and the phone LM", ("train_pretrained_transducer",),
          "asrkit.training.train"),
    Stage(8, "decode dev and test with each configured search, beam and LM (the LM's weights chosen on dev)",
          ("lm_weights", "decode"), "asrkit.decoding.lm_weights, asrkit.decoding.decode"),
    Stage(9, "score (PER, or WER and CER), plots, RESULTS.md",
          ("score", "training_curves", "sensitivity", "model_results", "results"), "asrkit.scoring.score"),
)


@dataclass(frozen=True)
class RecipeModel:
    """A model a recipe can train: an entry of the config's ``models`` list, trained into ``exp/<name>``."""

    name: str
    #: the network's type in the model registry (:data:`asrkit.model.registry.MODEL_TYPES`)
    type: str
    stage: int
    #: how RESULTS.md names it (Graves et al.'s Table 1)
    label: str
    #: parts started from other experiments' models: part (encoder, decoder) -> experiment (exp/<experiment>)
    init: Mapping[str, str] = field(default_factory=dict)


RECIPE_MODELS: Dict[str, RecipeModel] = {m.name: m for m in (
    RecipeModel("ctc", "ctc", 4, "CTC"),
    RecipeModel("transducer", "transducer", 6, "TRANS"),
    RecipeModel("pretrained_transducer", "transducer", 7, "PRETRANS", {"encoder": "ctc", "decoder": "phone_lm"}),
)}
#: the plots stage 9 makes of each model: exp/<model>/<plot>.png
MODEL_PLOTS: Tuple[str, ...] = ("training", "sensitivity")
#: a model's own rows of RESULTS.md, written (and printed) as soon as its decodings are scored: exp/<model>/<this>
MODEL_RESULTS = "RESULTS.md"
#: the experiment of the token LM that pretrains prediction networks (stage 5)
PHONE_LM = "phone_lm"
#: the folder of stage 5's n-gram token LMs, exp/<this>/<order>gram.arpa
NGRAM_LM = "ngram_lm"


def stage_table() -> str:
    """The stages as text, one line each: what ``run.sh --help`` and the docs show."""
    return "\n".join(f"  {s.number}  {s.does}\n       rule {', '.join(s.rules)} -> {s.runs}" for s in STAGES)
