#!/usr/bin/env bash
# __NAME__: speech recognition on a corpus laid out as
#   <corpus_dir>/<part>/<utterance>.wav   (16 kHz mono; flac or any format soundfile reads also works)
#   <corpus_dir>/<part>/<utterance>.txt   (its transcript, one line)
# with one <part> folder each for train, dev and test (their names: corpus.parts in config.yaml).
# Set corpus_dir in config.yaml (relative to this folder, or absolute; a symlink to your copy works).
#
# Stages (Snakemake decides what is stale; up-to-date stages are skipped):
#   0  (nothing: this recipe has no demo corpus)
#   1  manifests: local/prepare.py checks the corpus and writes lhotse manifests
#   2  features: 40 mel fbank + energy (kaldifeat); mean/variance from train
#   3  units: sentencepiece trained on the training transcripts (units in config.yaml)
#   4  train CTC          5 token LM          6 train TRANS          7 train PRETRANS
#   8  decode             9 score: WER and CER, RESULTS.md
#
# All outputs go under --dir (default: this folder): data/, exp/, logs/, RESULTS.md. Usage:
#   run.sh [--stage N] [--stop-stage M] [--config extra.yaml] [--dir DIR] [--cores N] [--profile DIR]
#          [-- snakemake args]
exec "$(dirname "$0")/__ROOT__/local/run_recipe.sh" "$0" "$@"
