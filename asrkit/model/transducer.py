"""RNN transducer (Graves 2012; Graves, Mohamed & Hinton 2013) trained with k2's pruned RNN-T loss.

The pruned loss (Kuang et al. 2022, as in icefall's ``pruned_transducer_stateless``) runs in two passes:
a "simple" loss whose joiner is just the sum of linear projections of the encoder and decoder outputs
(cheap over the whole (T, U + 1) lattice) tells, from its occupation gradients, which ``prune_range``
consecutive label positions matter at each frame; the real joiner is then evaluated only there.
"""

from contextlib import nullcontext
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Sequence, Tuple

import torch
from torch import nn

from asrkit.config import TransducerConfig
from asrkit.model.ctc import CtcModel
from asrkit.model.decoder import Decoder
from asrkit.model.interface import AcousticModel, GreedyPath
from asrkit.model.joiner import Joiner
from asrkit.model.torchscript import ExportedTransducer
from asrkit.model.rnnt_backend import do_rnnt_pruning, get_rnnt_prune_ranges, rnnt_loss, rnnt_loss_pruned, \
    rnnt_loss_smoothed


class Transducer(AcousticModel):
    """Encoder (transcription network), decoder (prediction network) and joiner, plus the simple projections.

    ``encoder(x (N, T, C), x_lens (N,)) -> (N, T', encoder.output_dim), (N,)`` is any encoder with that
    interface, e.g. :class:`asrkit.model.encoder.BiLstmEncoder`.
    """

    def __init__(self, encoder: nn.Module, decoder: Decoder, joiner: Joiner, vocab_size: int,
                 ctc_output: bool = False):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.joiner = joiner
        self.simple_am_proj = nn.Linear(encoder.output_dim, vocab_size)
        self.simple_lm_proj = nn.Linear(decoder.output_dim, vocab_size)
        #: the CTC output layer of the auxiliary CTC loss (``transducer.ctc_loss_scale`` > 0), as a CTC model's
        #: ``output``; training alone reads it
        self.ctc_output = nn.Linear(encoder.output_dim, vocab_size) if ctc_output else None
        #: the parts started from other models (:meth:`mark_pretrained`): encoder, decoder
        self.pretrained_parts: FrozenSet[str] = frozenset()

    @classmethod
    def from_options(cls, options: Mapping[str, Any], encoder: nn.Module, vocab_size: int) -> "Transducer":
        """The prediction network and joiner sizes: ``decoder_*`` (see :meth:`Decoder.from_options`) and
        ``joiner_dim``; a CTC output layer if ``ctc_loss_scale`` > 0."""
        decoder = Decoder.from_options(options, vocab_size)
        joiner = Joiner(encoder.output_dim, decoder.output_dim, options["joiner_dim"], vocab_size)
        return cls(encoder, decoder, joiner, vocab_size, ctc_output=options["ctc_loss_scale"] > 0)

    def parts_from_ctc_model(self) -> Dict[str, nn.Module]:
        """The encoder, and the CTC output layer if there is one (a CTC model's ``output``)."""
        return {"encoder": self.encoder, **({"output": self.ctc_output} if self.ctc_output is not None else {})}

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
        encoder_out, encoder_lens = self.encoder(x, x_lens)  # (N, T', encoder_dim), (N,)
        return self.encoded_losses(encoder_out, encoder_lens, y_padded, y_lens, prune_range=prune_range,
                                   am_scale=am_scale, lm_scale=lm_scale, loss=loss)

    def encoded_losses(self, encoder_out: torch.Tensor, encoder_lens: torch.Tensor, y_padded: torch.Tensor,
                       y_lens: torch.Tensor, *, prune_range: int, am_scale: float, lm_scale: float, loss: str,
                       decoder_frozen: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward`'s losses from the encoder's output (N, T', encoder_dim) and lengths (N,);
        ``decoder_frozen``: no gradient reaches the prediction network."""
        if loss not in ("pruned", "full"):
            raise ValueError(f"loss must be 'pruned' or 'full', got {loss!r}")
        decoder_in = self.decoder.start_with_blank(y_padded, y_lens)  # (N, U + 1)
        with torch.no_grad() if decoder_frozen else nullcontext():
            decoder_out, _ = self.decoder(decoder_in)  # (N, U + 1, decoder_dim)
        symbols = decoder_in[:, 1:]  # (N, U): the labels, padding replaced by blank
        blank = self.decoder.blank_id
        boundary = torch.zeros(encoder_out.size(0), 4, dtype=torch.int64, device=encoder_out.device)
        boundary[:, 2] = y_lens
        boundary[:, 3] = encoder_lens

        # The losses in float32 also under mixed precision (autocast), as icefall does: they sum over many paths.
        # Their inputs are cast to the layers' dtype first: a float32 layer outside autocast refuses float16 or
        # bfloat16 input.
        float32 = torch.autocast(encoder_out.device.type, enabled=False)
        with float32:
            simple = rnnt_loss_smoothed(
                lm=self.simple_lm_proj(decoder_out.to(self.simple_lm_proj.weight.dtype)).float(),
                am=self.simple_am_proj(encoder_out.to(self.simple_am_proj.weight.dtype)).float(),
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

    @staticmethod
    def frames_needed(tokens: Sequence[int], loss_options: TransducerConfig) -> int:
        """The full loss emits any number of tokens at a frame: one frame will do. The pruned loss's ranges need
        a frame per token (k2 and icefall: T >= U). The auxiliary CTC loss (``ctc_loss_scale`` > 0) needs what
        a CTC model does."""
        needed = 1 if loss_options.loss == "full" else len(tokens)
        return max(needed, CtcModel.frames_needed(tokens, None)) if loss_options.ctc_loss_scale > 0 else needed

    def mark_pretrained(self, parts: Iterable[str]) -> None:
        """``parts``: ``encoder`` (with the CTC output layer, if any) and/or ``decoder``, started from a CTC model
        and a token LM (PRETRANS); ``transducer.pretrained_warmup`` says how the warm-up treats them."""
        unknown = set(parts) - {"encoder", "decoder"}
        if unknown:
            raise ValueError(f"pretrained parts must be encoder or decoder, got {sorted(unknown)}")
        self.pretrained_parts = frozenset(parts)

    def training_loss_terms(self, batch: Mapping[str, torch.Tensor], loss_options: TransducerConfig,
                            batch_index: int) -> Dict[str, torch.Tensor]:
        """``transducer``, icefall's recipe: ``simple_loss_scale`` x simple loss + s x pruned loss, where s is 0
        for the first ``warmup_batches`` batches (the pruning bounds come from the simple loss, useless until it
        has learnt something), 0.1 for as many more, then 1; with ``loss: full``, the full transducer loss alone.
        ``ctc`` (with a CTC output layer): ``ctc_loss_scale`` x the CTC loss of that layer on the encoder output.

        A model with pretrained parts (:meth:`mark_pretrained`) warms up as ``pretrained_warmup`` says: freeze,
        those parts get no gradient during the first ``warmup_batches`` batches (s = 0), where the simple loss's
        randomly initialised projections would be all they learn through, while the projections learn to read
        them; skip, no warm-up (s = 1 from the start); train, the warm-up of a model trained from scratch.

        loss_options: the config's ``transducer`` section (loss, prune_range, am_scale, lm_scale,
        simple_loss_scale, warmup_batches, pretrained_warmup, ctc_loss_scale).
        """
        t = loss_options
        warmup = 0 if self.pretrained_parts and t.pretrained_warmup == "skip" else t.warmup_batches
        # the batches where the pruned loss is off, and the simple loss's random projections alone would train them
        projections_only = t.loss != "full" and batch_index < warmup
        frozen = self.pretrained_parts if projections_only and t.pretrained_warmup == "freeze" else frozenset()
        with torch.no_grad() if "encoder" in frozen else nullcontext():
            encoder_out, encoder_lens = self.encoder(batch["features"], batch["feature_lens"])
        simple, transducer_loss = self.encoded_losses(encoder_out, encoder_lens, batch["targets"],
                                                      batch["target_lens"], prune_range=t.prune_range,
                                                      am_scale=t.am_scale, lm_scale=t.lm_scale, loss=t.loss,
                                                      decoder_frozen="decoder" in frozen)
        if t.loss != "full":
            pruned_scale = 0.0 if batch_index < warmup else 0.1 if batch_index < 2 * warmup else 1.0
            transducer_loss = t.simple_loss_scale * simple + pruned_scale * transducer_loss
        with torch.no_grad() if "encoder" in frozen else nullcontext():  # the CTC layer came with the encoder
            return {"transducer": transducer_loss, **self._ctc_term(encoder_out, encoder_lens, batch, t)}

    def dev_loss_terms(self, batch: Mapping[str, torch.Tensor], loss_options: TransducerConfig
                       ) -> Dict[str, torch.Tensor]:
        """``transducer``: the exact transducer loss, -log p(y | x) summed over the batch (the full RNN-T loss,
        whichever loss trains: the pruned one is a bound that depends on the pruning); ``ctc`` as in
        :meth:`training_loss_terms`. The full loss's (N, T', U + 1, V) lattice is affordable on a dev set."""
        encoder_out, encoder_lens = self.encoder(batch["features"], batch["feature_lens"])
        t = loss_options
        _, transducer_loss = self.encoded_losses(encoder_out, encoder_lens, batch["targets"], batch["target_lens"],
                                                 prune_range=t.prune_range, am_scale=t.am_scale,
                                                 lm_scale=t.lm_scale, loss="full")
        return {"transducer": transducer_loss, **self._ctc_term(encoder_out, encoder_lens, batch, t)}

    def _ctc_term(self, encoder_out: torch.Tensor, encoder_lens: torch.Tensor, batch: Mapping[str, torch.Tensor],
                  loss_options: TransducerConfig) -> Dict[str, torch.Tensor]:
        """``{"ctc": ctc_loss_scale x the CTC loss of the CTC output layer}``, or nothing without that layer."""
        if self.ctc_output is None:
            return {}
        with torch.autocast(encoder_out.device.type, enabled=False):  # float32, as the transducer losses
            log_probs = self.ctc_output(encoder_out.float()).log_softmax(dim=-1)
            ctc_loss = nn.functional.ctc_loss(log_probs.transpose(0, 1), batch["targets"], encoder_lens,
                                              batch["target_lens"], blank=self.decoder.blank_id, reduction="sum")
        return {"ctc": loss_options.ctc_loss_scale * ctc_loss}

    def path_log_probs(self, features: torch.Tensor, path: GreedyPath) -> torch.Tensor:
        """The joiner's distribution at each frame, given the prediction network's state after the labels the
        path emitted before that frame (which depends on those labels only, not on the input)."""
        device, blank = features.device, self.decoder.blank_id
        with torch.no_grad():  # the prediction network's states, as the greedy path computed them
            decoder_out, state = self.decoder(torch.tensor([[blank]], device=device))
            decoder_outs = [decoder_out[:, 0]]
            for token in path.tokens:
                out, state = self.decoder.step(torch.tensor([token], device=device), state)
                decoder_outs.append(out)
            decoder_proj = self.joiner.project_decoder(torch.cat(decoder_outs))  # (U + 1, J)
        encoder_proj = self.joiner.project_encoder(self.utterance_encoding(features))  # (T', J)
        frames = torch.arange(encoder_proj.size(0))
        labels_before = torch.searchsorted(torch.tensor(path.frames, dtype=torch.long), frames)  # (T',)
        return self.joiner(encoder_proj, decoder_proj[labels_before.to(device)]).log_softmax(dim=-1)

    @torch.no_grad()
    def alignment_log_probs(self, features: torch.Tensor, tokens: List[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """The lattice of ``tokens`` (label ids, no blank) over the utterance ``features`` (T, C): (T', U + 1) blank
        and (T', U) next-label log-probabilities (float64, on the CPU), position u having read u labels."""
        blank = self.decoder.blank_id
        decoder_out, _ = self.decoder(torch.tensor([[blank] + tokens], device=features.device))  # (1, U + 1, H)
        encoder_proj = self.joiner.project_encoder(self.utterance_encoding(features))  # (T', J)
        log_probs = self.joiner(encoder_proj.unsqueeze(1), self.joiner.project_decoder(decoder_out[0]).unsqueeze(0)
                                ).log_softmax(dim=-1).double().cpu()  # (T', U + 1, V): position u read u labels
        labels = torch.tensor(tokens, dtype=torch.long)
        label_log_probs = log_probs[:, :-1].gather(2, labels.view(1, -1, 1).expand(log_probs.size(0), -1, 1))[..., 0]
        return log_probs[..., blank], label_log_probs

    def exported(self, mean: torch.Tensor, std: torch.Tensor) -> nn.Module:
        return ExportedTransducer(self, mean, std)

    def utterance_encoding(self, features: torch.Tensor) -> torch.Tensor:
        """features: (T, C) one utterance -> (T', encoder.output_dim)."""
        return self.encoder(features.unsqueeze(0), torch.tensor([features.size(0)]))[0][0]
