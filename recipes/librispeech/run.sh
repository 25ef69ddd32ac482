#!/usr/bin/env bash
# LibriSpeech word recognition: sentencepiece units, the BiLSTM CTC and RNN transducers of the TIMIT recipe,
# scored in WER and CER.
#
# You need LibriSpeech (openslr.org/12) unpacked: set corpus_dir in config.yaml to the folder holding the
# parts (train-clean-100/, dev-clean/, test-clean/; a symlink to your copy works), and corpus.parts to the
# parts you train, tune and test on. Without one, `run.sh --config demo.yaml --dir demo` synthesises a small
# LibriSpeech-layout corpus and runs the same stages.
#
# The numbered stages are listed below (`run.sh --help`); Snakemake decides what is stale, and up-to-date
# stages are skipped.
#
# All outputs go under --dir (default: this folder): data/, exp/, logs/, RESULTS.md. Removing them is
# always safe. Usage:
#   run.sh [--stage N] [--stop-stage M] [--config extra.yaml] [--dir DIR] [--cores N] [--profile DIR]
#          [-- snakemake args]
exec "$(dirname "$0")/../../local/run_recipe.sh" "$0" "$@"
