#!/usr/bin/env bash
# __NAME__: speech recognition on a corpus laid out as
#   <corpus_dir>/<part>/<utterance>.wav   (16 kHz mono; flac or any format soundfile reads also works)
#   <corpus_dir>/<part>/<utterance>.txt   (its transcript, one line)
# with one <part> folder each for train, dev and test (their names: corpus.parts in config.yaml).
# Set corpus_dir in config.yaml (relative to this folder, or absolute; a symlink to your copy works).
#
# The numbered stages are listed below (`run.sh --help`); Snakemake decides what is stale, and up-to-date
# stages are skipped.
#
# All outputs go under --dir (default: this folder): data/, exp/, logs/, RESULTS.md. Usage:
#   run.sh [--stage N] [--stop-stage M] [--config extra.yaml] [--dir DIR] [--cores N] [--profile DIR]
#          [-- snakemake args]
exec "$(dirname "$0")/__ROOT__/local/run_recipe.sh" "$0" "$@"
