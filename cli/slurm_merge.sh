#!/usr/bin/env bash
# Merge job of cli/slurm_conformers_array.sh: `molgen merge` joins the finished chunks of every shard into
# one SDF (written under a temporary name, renamed when complete) and concatenates the shards' failure
# lists. It checks the shards' manifests and names any missing shard or chunk, and then exits 1 unless
# --allow-missing is given (extra arguments go to molgen merge).
#
#   sbatch cli/slurm_merge.sh out/ out.sdf                      # usually submitted by cli/submit_conformers.sh
#   sbatch cli/slurm_merge.sh out/ partial.sdf --allow-missing  # what is there, for a first look
#
# Merging is I/O: one core; the time is that of copying the chunks once (gzip'ed chunks take longer).
#SBATCH --job-name=molgen-merge
#SBATCH --cpus-per-task=1
#SBATCH --mem=2G
#SBATCH --time=02:00:00
#SBATCH --output=logs/%x_%j.out
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: sbatch cli/slurm_merge.sh OUT_DIR [MERGED.sdf] [molgen merge options...]" >&2
  exit 2
fi
out=${1%/}
shift
merged=$out.sdf
if [[ $# -gt 0 && $1 != -* ]]; then
  merged=$1
  shift
fi
molgen merge "$out/" -o "$merged" --json "$@"
