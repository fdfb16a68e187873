#!/usr/bin/env bash
# Conformers for a large input on a SLURM job array: every array task streams its own deterministic share
# (shard) of the input into OUT_DIR/shard-<i>-of-<k>/chunk-*.sdf; `molgen merge` (cli/slurm_merge.sh)
# joins the shards afterwards. cli/submit_conformers.sh submits both, the merge waiting for the array.
#
#   mkdir -p logs                                   # SLURM opens the log files below before the job starts
#   sbatch cli/slurm_conformers_array.sh big.smi out/                     # 64 tasks (--array below)
#   sbatch --array=0-127 cli/slurm_conformers_array.sh big.smi out/ --gzip   # command-line options win
#   N_CONFS=50 sbatch cli/slurm_conformers_array.sh big.smi out/ --rms 0.5   # extra args go to molgen
#
# Shards: `molgen conformers` takes --shard-index/--num-shards from SLURM_ARRAY_TASK_ID/_COUNT, so the
# array must be 0..K-1 (0-63, or throttled: 0-63%16). To rerun only some tasks of a 64-shard run
# (`--array=5,17`, where SLURM_ARRAY_TASK_COUNT would be 2), set NUM_SHARDS=64: the shard flags are then
# passed explicitly. Simpler: resubmit the whole array; finished shards are skipped within seconds.
#
# Resume: molgen writes every chunk under a temporary name, renames it when complete and records it in
# the shard's manifest.jsonl; a resubmitted task skips finished chunks and redoes only the rest. The
# options are fingerprinted in OUT_DIR/run.json: resubmit with the same options (other options are
# refused with a message; `--overwrite` starts the folder again).
#
# Exit codes: molgen exits 1 when some molecules failed (listed in OUT_DIR/shard-*/failures.csv); that is
# not a task failure, so this script exits 0 then and `--dependency=afterok` merges still run. Exit 2
# (usage error) and crashes fail the task.
#
# Resources: --threads defaults to SLURM_CPUS_PER_TASK (RDKit work in worker processes, the denoiser in
# batches). About 40 conformers/s per core on CPU for drug-like molecules (BENCHMARKS.md, N=10): 1 million
# molecules x 10 conformers on 64 x 4 cores take roughly 20 minutes per task; larger molecules are slower.
# For a GPU partition add `#SBATCH --gpus=1`: --device defaults to auto (cuda when visible).
#
# Environment: sbatch exports the submitting shell's environment (activate molgen's venv before sbatch,
# or source it below). Compute nodes may be offline: the default model ships inside the package;
# `--model PATH` or $MOLGEN_MODEL selects another checkpoint.
#SBATCH --job-name=molgen-confs
#SBATCH --array=0-63
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=logs/%x_%A_%a.out
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: sbatch cli/slurm_conformers_array.sh INPUT OUT_DIR [molgen conformers options...]" >&2
  exit 2
fi
input=$1
out=${2%/}/  # trailing '/': folder (streaming chunked) mode even if the name has a dot
shift 2

shard_flags=()
if [[ -n ${NUM_SHARDS:-} ]]; then
  shard_flags=(--shard-index "${SLURM_ARRAY_TASK_ID:?not a SLURM array task}" --num-shards "$NUM_SHARDS")
elif [[ -n ${SLURM_ARRAY_TASK_ID:-} ]] &&
  { [[ ${SLURM_ARRAY_TASK_MIN:-0} -ne 0 ]] || [[ ${SLURM_ARRAY_TASK_MAX:-0} -ne $((${SLURM_ARRAY_TASK_COUNT:-1} - 1)) ]]; }; then
  echo "array ${SLURM_ARRAY_TASK_MIN:-?}-${SLURM_ARRAY_TASK_MAX:-?} with ${SLURM_ARRAY_TASK_COUNT:-?} tasks is not 0..count-1:" \
    "shards would be wrong; submit --array=0-<K-1>, or set NUM_SHARDS=<K> to rerun some tasks of a K-shard run" >&2
  exit 2
fi

echo "task ${SLURM_ARRAY_TASK_ID:-none} of ${SLURM_ARRAY_TASK_COUNT:-1} on $(hostname), ${SLURM_CPUS_PER_TASK:-?} cores" >&2
status=0
molgen conformers "$input" -o "$out" -n "${N_CONFS:-10}" ${shard_flags[@]+"${shard_flags[@]}"} --no-progress --json "$@" || status=$?
if [[ $status -eq 1 ]]; then
  echo "some molecules failed (not a task failure): see ${out}shard-*/failures.csv" >&2
  exit 0
fi
exit "$status"
