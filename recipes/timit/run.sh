#!/usr/bin/env bash
# TIMIT phone recognition, Graves, Mohamed & Hinton 2013 (deep BiLSTM + CTC).
#
# You need an LDC TIMIT copy (LDC93S1): set corpus_dir in config.yaml to the folder holding TRAIN/ and
# TEST/ (or the one holding data/); upper- or lower-case names both work, nothing is copied. Without
# one, `run.sh --config demo.yaml --dir demo` builds a synthetic TIMIT-layout corpus and runs the same stages.
#
# Stages (Snakemake decides what is stale; up-to-date stages are skipped):
#   0  demo corpus (only when corpus_dir is null)
#   1  manifests: standard sets (train 3696 utts/462 spk, dev 400/50, core test 192/24) with lhotse
#   2  features: 40 mel fbank + energy (kaldifeat), stored with lhotse; mean/variance from train
#   3  units: token table (blank + phones), 60->48 and 60->39 folding tables
#   4  train CTC: deep bidirectional LSTM, checkpoint every epoch, resumes after a crash
#   5  phone LM: the transducer's prediction network pretrained on phone transcripts (for PRETRANS)
#   6  train TRANS: RNN transducer with k2's pruned loss (fast_rnnt where k2 is not installed)
#   7  train PRETRANS: the transducer started from the CTC encoder and the phone LM
#   8  decode: greedy, CTC prefix beam search, transducer beam and modified beam searches
#   9  score: PER on 39 phones, sclite-style reports, plots, RESULTS.md
#
# All outputs go under --dir (default: this folder): data/, exp/, logs/, RESULTS.md. Removing them is
# always safe. --profile runs the jobs elsewhere, e.g. `--profile profiles/slurm` as SLURM jobs (see its
# comments); --cores then only caps a job's threads, and the profile's `cores` is the default. Usage:
#   run.sh [--stage N] [--stop-stage M] [--config extra.yaml] [--dir DIR] [--cores N] [--profile DIR]
#          [-- snakemake args]
exec "$(dirname "$0")/../../local/run_recipe.sh" "$0" "$@"
