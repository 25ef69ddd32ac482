"""asrkit: Kaldi-style speech recognition recipes on torch, lhotse, kaldifeat and k2 (or fast_rnnt)."""

__version__ = "0.1.0"
