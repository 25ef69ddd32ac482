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
#   3  lang: token table (blank + phones), 60->48 and 60->39 folding tables
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
set -euo pipefail

stage=0
stop_stage=9
extra_configs=()
dir=.
cores=
profile=
snakemake_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --config) extra_configs+=("$2"); shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --cores) cores=$2; shift 2 ;;
    --profile) profile=$(cd "$2" && pwd); shift 2 ;;
    --) shift; snakemake_args=("$@"); break ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//; $d'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see run.sh --help)" >&2; exit 2 ;;
  esac
done

recipe_dir=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$recipe_dir/../.." && pwd)
snakemake=${SNAKEMAKE:-$root/.venv/bin/snakemake}
cd "$recipe_dir"
mkdir -p "$dir"

work=$(cd "$dir" && pwd)

# Snakemake locks the folder while it runs. A lock left by a killed run must be removed by hand, and only
# when no run is going on: say which case this is rather than print Snakemake's generic message. A run holds
# an flock on .snakemake/run.sh.lock from here on (Snakemake and its jobs inherit it; the kernel releases it
# however they end), so that a second run is refused even before the first has taken Snakemake's lock.
mkdir -p "$work/.snakemake"
exec 9>>"$work/.snakemake/run.sh.lock"
running="--directory $(printf '%s' "$work" | sed 's/[][\.*^$+?(){}|]/\\&/g')( |$)"  # runs not started by run.sh
if ! flock -n 9 || pgrep -f -- "$running" >/dev/null; then
  echo "run.sh: another run is working in $work; wait for it to finish (or stop it) first." >&2
  exit 1
fi
if [ -n "$(ls -A "$work/.snakemake/locks" 2>/dev/null)" ] && [[ " ${snakemake_args[*]} " != *" --unlock "* ]]; then
  echo "run.sh: $work is locked by an earlier run that did not finish (killed or crashed)." >&2
  unlock=$(printf '%q ' "$0" --dir "$work" -- --unlock)  # quoted: the folder may contain spaces
  echo "run.sh: no run is going on there now; unlock it with:  ${unlock% }" >&2
  echo "run.sh: then rerun: finished stages are kept, unfinished ones start again (training resumes)." >&2
  exit 1
fi

# Locally every job runs on this machine's cores. With a profile, --cores still caps each job's threads
# (Snakemake's rule), so it is passed only when asked for: the profile sets it for its executor.
run_args=()
if [ -n "$profile" ]; then run_args+=(--profile "$profile"); fi
if [ -n "$cores" ] || [ -z "$profile" ]; then run_args+=(--cores "${cores:-$(nproc)}"); fi

targets=()
for ((s = stage; s <= stop_stage; s++)); do targets+=("stage_$s"); done
[[ " ${snakemake_args[*]} " == *" --unlock "* ]] && targets=()
echo "run.sh: stages $stage..$stop_stage of $(basename "$recipe_dir") in $work" >&2

# --rerun-incomplete: a job killed after its last output was renamed into place (every output is written
# atomically) but before Snakemake recorded it as finished is simply run again, instead of stopping the rerun.
exec "$snakemake" --snakefile "$root/Snakefile" --directory "$work" \
  --configfile config.yaml "${extra_configs[@]}" "${run_args[@]}" --printshellcmds --rerun-incomplete \
  "${targets[@]}" "${snakemake_args[@]}"
