#!/usr/bin/env bash
# Conformers for a large SMILES file on a SLURM cluster: one array task per shard, then a merge.
#
#   split -n l/100 -d -a 3 --additional-suffix=.smi all.smi shards/part_     # 100 shards
#   sbatch --array=0-99 cli/slurm_conformers_array.sh shards out
#   # when all tasks are done:
#   cli/merge_shards.sh out all_confs.sdf
#
# Each task skips a shard whose output already exists (molgen writes to a temporary name and renames
# on success, so a half-written file never looks finished): resubmitting the array resumes the job.
# Compute nodes are usually offline: molgen's default model ships inside the package; pass --model
# PATH for another one.
#SBATCH --job-name=molgen-confs
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=04:00:00
#SBATCH --output=logs/%x_%A_%a.out
set -euo pipefail
shards=${1:?shard folder}
out=${2:?output folder}
n_confs=${N_CONFS:-10}
mkdir -p "$out" logs
shard=$(printf "%s/part_%03d.smi" "$shards" "${SLURM_ARRAY_TASK_ID}")
target="$out/$(basename "$shard" .smi).sdf"
if [[ -s "$target" ]]; then
  echo "done already: $target"; exit 0
fi
# one torch thread per core given to the task; RDKit follows --threads
molgen conformers "$shard" -n "$n_confs" -o "$target" --threads "${SLURM_CPUS_PER_TASK:-1}" \
  --seed "${SLURM_ARRAY_TASK_ID}" --no-progress --json > "$out/$(basename "$shard" .smi).json" || status=$?
# exit code 1 means some molecules failed (listed in *.failed.csv next to the output); that is not a task failure
if [[ ${status:-0} -gt 1 ]]; then exit "$status"; fi
