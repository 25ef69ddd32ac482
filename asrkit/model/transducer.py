"""RNN transducer (Graves 2012; Graves, Mohamed & Hinton 2013) trained with k2's pruned RNN-T loss.

The pruned loss (Kuang et al. 2022, as in icefall's ``pruned_transducer_stateless``) runs in two passes:
a "simple" loss whose joiner is just the sum of linear projections of the encoder and decoder outputs
(cheap over the whole (T, U + 1) lattice) tells, from its occupation gradients, which ``prune_range``
consecutive label positions matter at each frame; the real joiner is then evaluated only there.
"""

from typing import Tuple

import torch
from torch import nn

from asrkit.model.decoder import Decoder
from asrkit.model.joiner import Joiner
from asrkit.model.rnnt_backend import do_rnnt_pruning, get_rnnt_prune_ranges, rnnt_loss, rnnt_loss_pruned, \
    rnnt_loss_smoothed


class Transducer(nn.Module):
    """Encoder (transcription network), decoder (prediction network) and joiner, plus the simple projections.

    ``encoder(x (N, T, C), x_lens (N,)) -> (N, T', encoder.output_dim), (N,)`` is any encoder with that
    interface, e.g. :class:`asrkit.model.encoder.BiLstmEncoder`.
    """

    def __init__(self, encoder: nn.Module, decoder: Decoder, joiner: Joiner, vocab_size: int):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.joiner = joiner
        self.simple_am_proj = nn.Linear(encoder.output_dim, vocab_size)
        self.simple_lm_proj = nn.Linear(decoder.output_dim, vocab_size)

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor, y_padded: torch.Tensor, y_lens: torch.Tensor, *,
                prune_range: int, am_scale: float, lm_scale: float, loss: str) -> Tuple[torch.Tensor, torch.Tensor]:
        """Both losses, each summed over the batch: (simple_loss, transducer_loss). The loss settings are the
        config's ``transducer`` section's (:class:`asrkit.config.TransducerConfig`, where their defaults are).

        x: (N, T, C) features, x_lens: (N,); y_padded: (N, U) labels 1..V-1 (padding value irrelevant),
        y_lens: (N,), every one at least 1 (the loss backend requires a label per utterance).
        prune_range: label positions kept per frame by the pruned loss. When it exceeds U (the padded label
            length) the backend keeps all U + 1 positions at every frame, and the pruned loss equals the
            full one up to rounding.
        am_scale, lm_scale: weights of the encoder-only and decoder-only terms mixed into the simple loss
            (``rnnt_loss_smoothed``'s am_only_scale and lm_only_scale).
        loss: "pruned", or "full" to run the joiner over the whole (N, T', U + 1) lattice (exact, but memory
            grows with T' * U); the simple loss is computed either way.
        """
        if loss not in ("pruned", "full"):
            raise ValueError(f"loss must be 'pruned' or 'full', got {loss!r}")
        encoder_out, encoder_lens = self.encoder(x, x_lens)  # (N, T', encoder_dim), (N,)
        decoder_in = self.decoder.start_with_blank(y_padded, y_lens)  # (N, U + 1)
        decoder_out, _ = self.decoder(decoder_in)  # (N, U + 1, decoder_dim)
        symbols = decoder_in[:, 1:]  # (N, U): the labels, padding replaced by blank
        blank = self.decoder.blank_id
        boundary = torch.zeros(x.size(0), 4, dtype=torch.int64, device=x.device)
        boundary[:, 2] = y_lens
        boundary[:, 3] = encoder_lens

        # The losses in float32 also under mixed precision (autocast), as icefall does: they sum over many paths.
        float32 = torch.autocast(x.device.type, enabled=False)
        with float32:
            simple = rnnt_loss_smoothed(
                lm=self.simple_lm_proj(decoder_out).float(), am=self.simple_am_proj(encoder_out).float(),
                symbols=symbols, termination_symbol=blank, lm_only_scale=lm_scale, am_only_scale=am_scale,
                boundary=boundary, reduction="sum", return_grad=loss == "pruned")
        encoder_proj = self.joiner.project_encoder(encoder_out)  # (N, T', J)
        decoder_proj = self.joiner.project_decoder(decoder_out)  # (N, U + 1, J)
        if loss == "full":
            logits = self.joiner(encoder_proj.unsqueeze(2), decoder_proj.unsqueeze(1))  # (N, T', U + 1, V)
            with float32:
                return simple, rnnt_loss(logits=logits.float(), symbols=symbols, termination_symbol=blank,
                                         boundary=boundary, reduction="sum")

        simple_loss, (px_grad, py_grad) = simple
        ranges = get_rnnt_prune_ranges(px_grad=px_grad, py_grad=py_grad, boundary=boundary,
                                       s_range=prune_range)  # (N, T', s)
        encoder_pruned, decoder_pruned = do_rnnt_pruning(am=encoder_proj, lm=decoder_proj, ranges=ranges)
        logits = self.joiner(encoder_pruned, decoder_pruned)  # (N, T', s, V)
        with float32:
            pruned_loss = rnnt_loss_pruned(logits=logits.float(), symbols=symbols, ranges=ranges,
                                           termination_symbol=blank, boundary=boundary, reduction="sum")
        return simple_loss, pruned_loss
