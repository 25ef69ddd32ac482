"""Every row of Graves, Mohamed & Hinton 2013's Table 1 is a config over recipes/timit/config.yaml, and builds a
network of the paper's size (its Weights column, within 5%)."""

import copy
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.utils import update_config, validate

from asrkit.config import check_across_keys, write_schema
from asrkit.data.lang import BLANK
from asrkit.data.phones import phone_set
from asrkit.model.registry import build_model
from asrkit.workflow.stages import RECIPE_MODELS

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "timit"
SCHEMA = write_schema(Path(tempfile.gettempdir()) / "asrkit-tests" / "config.schema.json")
INPUT_DIM = 123  # 40 mel bands + energy, with deltas and delta-deltas
#: row -> weights in millions (Table 1)
TABLE_1 = {"ctc_3l_500h_tanh": 3.7, "ctc_1l_250h": 0.8, "ctc_1l_622h": 3.8, "ctc_2l_250h": 2.3,
           "ctc_3l_421h_uni": 3.8, "ctc_3l_250h": 3.8, "ctc_5l_250h": 6.8, "trans_3l_250h": 4.3,
           "pretrans_3l_250h": 4.3}
#: the transducer section's keys that size the network (as asrkit/workflow/rules/train.smk passes them)
NETWORK_KEYS = ("decoder_embedding_dim", "decoder_hidden_size", "decoder_num_layers", "joiner_dim")


def row_config(row: str) -> dict:
    """config.yaml with the row's config over it, as ``run.sh --config conf/<row>.yaml`` gives Snakemake."""
    config = yaml.safe_load((RECIPE / "config.yaml").read_text())
    update_config(config, yaml.safe_load((RECIPE / "conf" / f"{row}.yaml").read_text()))
    validate(config, SCHEMA)  # as the Snakefile does, which fills in the defaults
    return config


#: the configs in conf/ that are no row of Table 1 (recipes beyond the paper)
NOT_ROWS = ("beyond_paper",)


def test_every_row_has_a_config():
    assert sorted(p.stem for p in (RECIPE / "conf").glob("*.yaml")) == sorted([*TABLE_1, *NOT_ROWS])


@pytest.mark.parametrize("name", NOT_ROWS)
def test_configs_beyond_the_paper_are_valid_and_say_they_are_no_row(name):
    config = row_config(name)  # config.yaml under it, validated by the schema
    check_across_keys(config)
    assert "not a row of" in (RECIPE / "conf" / f"{name}.yaml").read_text().splitlines()[0]
    assert set(config["models"]) == set(RECIPE_MODELS)


@pytest.mark.parametrize("row", list(TABLE_1))
def test_row_has_the_papers_number_of_weights(row):
    config = row_config(row)
    features = config["features"]  # the 123 inputs
    assert (features["type"], features["num_mel_bins"], features["use_energy"], features["deltas"]) == \
        ("fbank", 40, True, True)
    vocab_size = len([BLANK] + phone_set(config["units"]["phone_set"]))
    (name,) = config["models"]  # one row, one model
    model_type = RECIPE_MODELS[name].type
    options = {**copy.deepcopy(config["model"]), "type": model_type}
    if model_type == "transducer":
        options.update({k: v for k, v in config["transducer"].items() if k in NETWORK_KEYS})
    weights = sum(p.numel() for p in build_model(options, INPUT_DIM, vocab_size).parameters())
    assert weights / 1e6 == pytest.approx(TABLE_1[row], rel=0.05), f"{row}: {weights:,} weights"


#: row -> (encoder name, bidirectional, recurrent units): the paper's network of each row
ENCODERS = {"ctc_3l_500h_tanh": ("tanh_rnn", True, "tanh"), "ctc_3l_421h_uni": ("lstm", False, "lstm"),
            **{row: ("blstm", True, "lstm") for row in TABLE_1
               if row not in ("ctc_3l_500h_tanh", "ctc_3l_421h_uni")}}


def built_encoder(config: dict):
    vocab_size = len([BLANK] + phone_set(config["units"]["phone_set"]))
    (name,) = config["models"]
    options = {**copy.deepcopy(config["model"]), "type": RECIPE_MODELS[name].type}
    if options["type"] == "transducer":
        options.update({k: v for k, v in config["transducer"].items() if k in NETWORK_KEYS})
    return build_model(options, INPUT_DIM, vocab_size).encoder


@pytest.mark.parametrize("row", list(TABLE_1))
def test_row_has_the_papers_encoder_and_direction(row):
    """The encoder of the row's name: its type, both directions or forward only, LSTM or tanh units, and the
    row's layers and cells (the output is 2 x cells when bidirectional)."""
    config = row_config(row)
    name, bidirectional, units = ENCODERS[row]
    layers, cells = (int(part[:-1]) for part in row.split("_")[1:3])  # e.g. ctc_3l_421h_uni: 3, 421
    assert (config["model"]["encoder"], config["model"]["num_layers"], config["model"]["hidden_size"]) == \
        (name, layers, cells)
    encoder = built_encoder(config)
    assert encoder.output_dim == (2 if bidirectional else 1) * cells and encoder.stack_frames == 1
    recurrent = [m for m in encoder.modules() if isinstance(m, torch.nn.RNNBase)]
    if units == "tanh":
        assert [(type(m), m.nonlinearity, m.bidirectional, m.num_layers) for m in recurrent] == \
            [(torch.nn.RNN, "tanh", True, layers)]
    elif config["model"]["peephole"]:
        directions = [layer.weight_ih.size(0) for layer in encoder.lstm.layers]  # the peephole LSTM's layers
        assert not recurrent and directions == [2 if bidirectional else 1] * layers
    else:
        assert [(isinstance(m, torch.nn.LSTM), m.bidirectional, m.num_layers) for m in recurrent] == \
            [(True, bidirectional, layers)]


@pytest.mark.parametrize("row", list(TABLE_1))
def test_row_trains_on_the_papers_schedule_and_the_tanh_row_without_noise(row):
    """The paper's schedule, uniform init and SGD; weight noise 0.075, but none for CTC-3L-500H-TANH (the paper
    found it did not learn with noise); the transducer rows train the full (exact) transducer loss."""
    training = row_config(row)["training"]
    assert (training["schedule"], training["init"], training["optimizer"], training["grad_clip"]) == \
        ("paper", "uniform", "sgd", 0)
    assert training["weight_noise_std"] == (0.0 if row == "ctc_3l_500h_tanh" else 0.075)
    if row.startswith(("trans", "pretrans")):
        assert row_config(row)["transducer"]["loss"] == "full"
    assert yaml.safe_load((RECIPE / "config.yaml").read_text())["transducer"]["loss"] == "pruned"
