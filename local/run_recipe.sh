#!/usr/bin/env bash
# The driver behind every recipe's run.sh: options, the run lock, and Snakemake on the shared workflow.
# A recipe's run.sh is its header comment (what --help prints) and one line:
#   exec "$(dirname "$0")/<path to this repo>/local/run_recipe.sh" "$0" "$@"
# Usage (as the recipe's run.sh):
#   run.sh [--stage N] [--stop-stage M] [--config extra.yaml] [--dir DIR] [--cores N] [--profile DIR]
#          [-- snakemake args]
# The recipe folder holds config.yaml and rules/prepare.smk; --dir is relative to it. A relative --config path is
# looked for from the caller's folder first, as shell tools do, then in the recipe folder (its demo.yaml, conf/).
set -euo pipefail

recipe_script=$1
shift
caller_dir=$(pwd)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)  # the repository: Snakefile, asrkit/, .venv
python=$root/.venv/bin/python

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
    -h|--help)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$recipe_script"
      printf '\nStages (asrkit/workflow/stages.py):\n'
      "$python" -c 'from asrkit.workflow.stages import stage_table; print(stage_table())'
      exit 0 ;;
    *) echo "run.sh: unknown option $1 (see run.sh --help)" >&2; exit 2 ;;
  esac
done

recipe_dir=$(cd "$(dirname "$recipe_script")" && pwd)
snakemake=${SNAKEMAKE:-$root/.venv/bin/snakemake}
for i in "${!extra_configs[@]}"; do
  config_file=${extra_configs[$i]}
  if [[ $config_file == /* ]]; then continue; fi
  if [ -e "$caller_dir/$config_file" ]; then
    extra_configs[$i]=$caller_dir/$config_file
  elif [ -e "$recipe_dir/$config_file" ]; then
    extra_configs[$i]=$recipe_dir/$config_file
  else
    echo "run.sh: --config $config_file: no such config file (looked in $caller_dir and in $recipe_dir)" >&2
    exit 2
  fi
done
cd "$recipe_dir"
# Snakemake names no file when one is empty or not a mapping, and keeps a repeated key's last value silently
"$python" -m asrkit.config_files config.yaml "${extra_configs[@]}"
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
  unlock=$(printf '%q ' "$recipe_script" --dir "$work" -- --unlock)  # quoted: the folder may contain spaces
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
  --configfile config.yaml "${extra_configs[@]}" --config "recipe_dir=$recipe_dir" "${run_args[@]}" \
  --printshellcmds --rerun-incomplete \
  "${targets[@]}" "${snakemake_args[@]}"
