"""The model types and encoders by the names the config gives them (``model.type``, ``model.encoder``), and
how each is built from the model options.

The model options are the config's ``model`` section plus ``type`` and, for transducers, the prediction
network and joiner sizes from its ``transducer`` section (see asrkit/config.py).
A checkpoint stores them, so that :func:`build_model` rebuilds the network it holds.
"""

from dataclasses import asdict, fields
from typing import Any, Callable, Dict, Mapping, Type

from torch import nn

from asrkit.config import ModelConfig, Section, TransducerConfig
from asrkit.model.ctc import CtcModel
from asrkit.model.decoder import Decoder
from asrkit.model.encoder import BiLstmEncoder
from asrkit.model.interface import AcousticModel
from asrkit.model.rnn_encoder import ForwardPeepholeLstmEncoder, RnnEncoder
from asrkit.model.transducer import Transducer

#: the transducer section's keys that shape the network (the rest are the loss's): the sizes, and the CTC loss's
#: scale, whose being above 0 gives the network a CTC output layer
TRANSDUCER_NETWORK_KEYS = (*TransducerConfig.DECODER_KEYS, "joiner_dim", "ctc_loss_scale")


def stored_model_options(model_type: str, model: ModelConfig, transducer: TransducerConfig) -> Dict[str, Any]:
    """What a checkpoint stores to rebuild its network, as plain data: the model section, the type and, for a
    transducer, the sizes of its prediction network and joiner and whether it has a CTC output layer."""
    options = {**asdict(model), "type": model_type}
    if model_type == "transducer":
        options.update({key: getattr(transducer, key) for key in TRANSDUCER_NETWORK_KEYS})
    return options


def _section_of(options: Mapping[str, Any], section: Type[Section]) -> Section:
    """The keys of ``section`` among stored model options, the others at their defaults."""
    return section.from_dict({f.name: options[f.name] for f in fields(section) if f.name in options})


def decoder_options(options: Mapping[str, Any]) -> Dict[str, Any]:
    """The prediction network's and joiner's sizes and the CTC loss's scale among stored options, those missing at
    their defaults."""
    sizes = asdict(_section_of(options, TransducerConfig))
    return {key: sizes[key] for key in TRANSDUCER_NETWORK_KEYS}


def model_options(options: Mapping[str, Any]) -> Dict[str, Any]:
    """Stored model options with every key, those a checkpoint lacks (one from an older asrkit) at their
    defaults."""
    return {**asdict(_section_of(options, ModelConfig)), **decoder_options(options), "type": options.get("type", "ctc")}


def blstm(options: Mapping[str, Any], input_dim: int) -> nn.Module:
    """The deep bidirectional LSTM of Graves et al. 2013 (optionally with peephole connections)."""
    return BiLstmEncoder(input_dim, options["hidden_size"], options["num_layers"], options["stack_frames"],
                         options["dropout"], peephole=options["peephole"])


def refuse_peephole(options: Mapping[str, Any]) -> None:
    if options["peephole"]:
        raise ValueError(f"model.peephole: only the blstm and lstm encoders have peephole connections, not "
                         f"{options['encoder']}")


def tanh_rnn(options: Mapping[str, Any], input_dim: int) -> nn.Module:
    """A deep bidirectional RNN of tanh units (Table 1's CTC-3L-500H-TANH)."""
    refuse_peephole(options)
    return RnnEncoder(input_dim, options["hidden_size"], options["num_layers"], nn.RNN, bidirectional=True,
                      stack_frames=options["stack_frames"], dropout=options["dropout"])


def lstm(options: Mapping[str, Any], input_dim: int) -> nn.Module:
    """A deep unidirectional (forward) LSTM (Table 1's CTC-3L-421H-UNI), optionally with peephole connections."""
    if options["peephole"]:
        return ForwardPeepholeLstmEncoder(input_dim, options["hidden_size"], options["num_layers"],
                                          options["stack_frames"], options["dropout"])
    return RnnEncoder(input_dim, options["hidden_size"], options["num_layers"], nn.LSTM, bidirectional=False,
                      stack_frames=options["stack_frames"], dropout=options["dropout"])


#: encoders by name: each builds ``encoder(x (N, T, C), x_lens (N,)) -> (N, T', output_dim), (N,)`` with the
#: attributes ``output_dim`` and ``stack_frames``, from the model options and the input dimension C
ENCODERS: Dict[str, Callable[[Mapping[str, Any], int], nn.Module]] = {
    "blstm": blstm,
    "tanh_rnn": tanh_rnn,
    "lstm": lstm,
}


#: model types by name (each class builds itself around an encoder: ``from_options``)
MODEL_TYPES: Dict[str, Type[AcousticModel]] = {
    "ctc": CtcModel,
    "transducer": Transducer,
}


def model_class(model_type: str) -> Type[AcousticModel]:
    """The class of a model type, by its name."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model type {model_type!r}: expected one of {tuple(MODEL_TYPES)}")
    return MODEL_TYPES[model_type]


def build_encoder(options: Mapping[str, Any], input_dim: int) -> nn.Module:
    options = model_options(options)
    if options["encoder"] not in ENCODERS:
        raise ValueError(f"unknown encoder {options['encoder']!r}: expected one of {tuple(ENCODERS)}")
    return ENCODERS[options["encoder"]](options, input_dim)


def build_decoder(options: Mapping[str, Any], vocab_size: int) -> Decoder:
    """The transducer's prediction network (also trained alone as a phone LM for PRETRANS)."""
    return Decoder.from_options(decoder_options(options), vocab_size)


def build_model(options: Mapping[str, Any], input_dim: int, vocab_size: int) -> AcousticModel:
    """The model of ``options["type"]`` on the encoder of ``options["encoder"]``, from the model options."""
    options = model_options(options)
    cls = model_class(options["type"])  # an unknown type is named before anything is built
    return cls.from_options(options, build_encoder(options, input_dim), vocab_size)
