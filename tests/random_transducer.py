"""Small random transducers and encoder outputs, for the tests of the loss and of the searches."""

from typing import List, Tuple

import torch

from asrkit.model.decoder import Decoder
from asrkit.model.encoder import BiLstmEncoder
from asrkit.model.joiner import Joiner
from asrkit.model.transducer import Transducer


def make_model(vocab: int = 6, input_dim: int = 5, seed: int = 0, dtype: torch.dtype = torch.float32,
               blank_bias: float = 0.0) -> Transducer:
    """A small random transducer; ``blank_bias`` is added to blank's logit (trained models mostly emit blank,
    and the Graves search is slow on models that do not)."""
    torch.manual_seed(seed)
    encoder = BiLstmEncoder(input_dim, 6, num_layers=1)
    decoder = Decoder(vocab, embedding_dim=4, hidden_size=7)
    joiner = Joiner(encoder.output_dim, decoder.output_dim, 9, vocab)
    with torch.no_grad():
        joiner.output_linear.bias[decoder.blank_id] += blank_bias
    return Transducer(encoder, decoder, joiner, vocab).to(dtype)


def random_encoder_batch(model: Transducer, lens: List[int], seed: int = 2) -> Tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    dim = model.joiner.encoder_proj.in_features
    return 2 * torch.randn(len(lens), max(lens), dim, generator=generator), torch.tensor(lens)
