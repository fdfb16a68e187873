#!/usr/bin/env bash
# Conformers on one node with several GPUs: torchrun starts one `molgen conformers` per GPU, then
# `molgen merge` joins the results.
#
#   cli/torchrun_conformers.sh INPUT OUT_DIR [GPUS [MERGED]] [-- molgen conformers options...]
#   cli/torchrun_conformers.sh big.smi out/ 4                       # -> out/shard-*-of-00004/, then out.sdf
#   N_CONFS=50 cli/torchrun_conformers.sh big.smi out/ 4 all.sdf -- --gzip
#   mkdir -p logs && sbatch cli/torchrun_conformers.sh big.smi out/ 4   # as a one-node SLURM job
#
# Each rank is a sub-shard: rank r of W (WORLD_SIZE = GPUS) takes shard I*W + r of K*W, where I/K are
# --shard-index/--num-shards (0/1 here; inside an array job they come from SLURM_ARRAY_TASK_ID/_COUNT, so
# an array of one-node GPU jobs works too), and `--device cuda` means the rank's own cuda:LOCAL_RANK.
# Each molecule's seed derives from its ID and --seed, so the conformers do not depend on the number of
# GPUs. The CPU cores are split between the ranks (--threads); RDKit's part runs in worker processes.
# Rerunning the same command resumes (finished chunks are skipped).
#
# Exit codes: torchrun stops every rank as soon as one exits non-zero, and `molgen conformers` exits 1
# when some molecules failed (an ordinary outcome in a large library). Each rank therefore runs inside
# `bash -c`, which turns 1 into 0; the failed molecules are listed in OUT_DIR/shard-*/failures.csv.
#
# Several nodes: no torchrun, one srun task per GPU. molgen maps SLURM_PROCID, SLURM_LOCALID and
# SLURM_NTASKS to RANK, LOCAL_RANK and WORLD_SIZE (molgen.cluster); the ranks never talk to each other,
# so no MASTER_ADDR/MASTER_PORT is needed. A job script for 4 nodes x 4 GPUs (16 sub-shards):
#
#   #SBATCH --nodes=4 --ntasks-per-node=4 --gpus-per-node=4 --cpus-per-task=8 --time=04:00:00
#   export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK   # srun (Slurm >= 22.05) does not inherit it from sbatch
#   srun bash -c 'molgen conformers "$@"; rc=$?; exit $((rc == 1 ? 0 : rc))' rank \
#     big.smi -o out/ -n 10 --device cuda --no-progress --json
#   molgen merge out/ -o out.sdf --json
#
# (--threads defaults to SLURM_CPUS_PER_TASK there; `cuda` is cuda:LOCAL_RANK modulo the visible GPUs, so
# --gpus-per-node and --gpus-per-task both work.)
#SBATCH --job-name=molgen-confs-gpu
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --mem=64G
#SBATCH --time=04:00:00
#SBATCH --output=logs/%x_%j.out
set -euo pipefail

usage="usage: cli/torchrun_conformers.sh INPUT OUT_DIR [GPUS [MERGED]] [-- molgen conformers options...]"
positional=()
while [[ $# -gt 0 && $1 != "--" ]]; do
  positional+=("$1")
  shift
done
[[ $# -gt 0 ]] && shift  # the '--'
if [[ ${#positional[@]} -lt 2 || ${#positional[@]} -gt 4 ]]; then
  echo "$usage" >&2
  exit 2
fi
input=${positional[0]}
out=${positional[1]%/}
gpus=${positional[2]:-$(python -c "import torch; print(torch.cuda.device_count())")}
merged=${positional[3]:-$out.sdf}
if ! [[ $gpus =~ ^[1-9][0-9]*$ ]]; then
  echo "GPUS must be a positive integer (no GPU visible?), got '$gpus'" >&2
  exit 2
fi
cores=$(python -c "from molgen.cluster import available_cpus; print(available_cpus())")
threads=$((cores / gpus > 0 ? cores / gpus : 1))
echo "$gpus ranks on $(hostname), $threads cores each" >&2

# shellcheck disable=SC2016  # "$@" and $? belong to the inner bash, not this one
torchrun --standalone --nproc_per_node="$gpus" --no-python \
  bash -c 'molgen conformers "$@"; rc=$?; exit $((rc == 1 ? 0 : rc))' rank \
  "$input" -o "$out/" -n "${N_CONFS:-10}" --device cuda --threads "$threads" --no-progress --json "$@"

if compgen -G "$out/shard-*/failures.csv" > /dev/null; then
  echo "some molecules failed: see $out/shard-*/failures.csv" >&2
fi
molgen merge "$out/" -o "$merged" --json
