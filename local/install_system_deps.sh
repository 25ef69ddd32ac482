#!/usr/bin/env bash
# Installs the Debian packages that make the demo corpus (TTS voices with phone timings, sox, fortunes), and
# SLURM with munge, which tests/workflow/test_slurm.py starts as a one-node cluster to run the recipe on.
# Does nothing when they are all there; needs root (or sudo) otherwise.
set -euo pipefail
packages=(festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festlex-cmu festlex-poslex
          flite libflite1 sox fortunes
          slurmctld slurmd slurm-client munge)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "[install] Debian packages: ${missing[*]}" >&2
sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
