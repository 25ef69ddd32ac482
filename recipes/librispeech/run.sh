#!/usr/bin/env bash
# LibriSpeech word recognition: sentencepiece units, the BiLSTM CTC and RNN transducers of the TIMIT recipe,
# scored in WER and CER.
#
# You need LibriSpeech (openslr.org/12) unpacked: set corpus_dir in config.yaml to the folder holding the
# parts (train-clean-100/, dev-clean/, test-clean/; a symlink to your copy works), and corpus.parts to the
# parts you train, tune and test on. Without one, `run.sh --config demo.yaml --dir demo` synthesises a small
# LibriSpeech-layout corpus and runs the same stages.
#
# Stages (Snakemake decides what is stale; up-to-date stages are skipped):
#   0  demo corpus (only when corpus_dir is null)
#   1  manifests: lhotse's prepare_librispeech, after checking every chapter
#   2  features: 40 mel fbank + energy (kaldifeat), stored with lhotse; mean/variance from train
#   3  units: sentencepiece trained on the training transcripts (units.model_type, units.vocab_size)
#   4  train CTC
#   5  token LM: the transducer's prediction network pretrained on the training transcripts' pieces
#   6  train TRANS: RNN transducer, k2's pruned loss (fast_rnnt where k2 is not installed)
#   7  train PRETRANS: the transducer started from the CTC encoder and the token LM
#   8  decode: greedy, CTC prefix beam search, transducer beam and modified beam searches
#   9  score: WER and CER, sclite-style reports, plots, RESULTS.md
#
# All outputs go under --dir (default: this folder): data/, exp/, logs/, RESULTS.md. Removing them is
# always safe. Usage:
#   run.sh [--stage N] [--stop-stage M] [--config extra.yaml] [--dir DIR] [--cores N] [--profile DIR]
#          [-- snakemake args]
exec "$(dirname "$0")/../../local/run_recipe.sh" "$0" "$@"
