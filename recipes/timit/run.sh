#!/usr/bin/env bash
# TIMIT phone recognition, Graves, Mohamed & Hinton 2013 (deep BiLSTM + CTC).
#
# You need an LDC TIMIT copy (LDC93S1): set corpus_dir in config.yaml to the folder holding TRAIN/ and
# TEST/ (or the one holding data/, as the Kaggle copy does, or TIMIT/, as the LDC disc does); upper- or
# lower-case names both work, nothing is copied. Without
# one, `run.sh --config demo.yaml --dir demo` builds a synthetic TIMIT-layout corpus and runs the same stages.
#
# The numbered stages are listed below (`run.sh --help`); Snakemake decides what is stale, and up-to-date
# stages are skipped.
#
# All outputs go under --dir (default: this folder): data/, exp/, logs/, RESULTS.md. Removing them is
# always safe. --profile runs the jobs elsewhere, e.g. `--profile profiles/slurm` as SLURM jobs (see its
# comments); --cores then only caps a job's threads, and the profile's `cores` is the default. Usage:
#   run.sh [--stage N] [--stop-stage M] [--config extra.yaml] [--dir DIR] [--cores N] [--profile DIR]
#          [-- snakemake args]
exec "$(dirname "$0")/../../local/run_recipe.sh" "$0" "$@"
