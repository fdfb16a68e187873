#!/usr/bin/env bash
# Data-parallel training on several nodes under SLURM, without torchrun: srun starts one task per GPU
# (nodes x GPUs per node tasks in all), and molgen maps SLURM_PROCID, SLURM_LOCALID and SLURM_NTASKS to
# torch's RANK, LOCAL_RANK and WORLD_SIZE (molgen.cluster, used by molgen.training.distributed). The tasks
# meet at MASTER_ADDR:MASTER_PORT (torch's env:// rendezvous), exported below: the first node of the
# allocation and a port derived from the job ID (two jobs sharing a node do not collide).
#
#   mkdir -p logs
#   sbatch cli/slurm_train.sh --steps 20000 --batch-size 64                 # 2 nodes x 4 GPUs (defaults below)
#   sbatch --nodes=4 --ntasks-per-node=8 --gpus-per-node=8 cli/slurm_train.sh --steps 20000
#   MOLGEN_RUN=runs/big sbatch cli/slurm_train.sh --max-minutes 600          # extra args go to the trainer
#
# - --ntasks-per-node must equal --gpus-per-node: rank r uses cuda:LOCAL_RANK, so every task must see all
#   GPUs of its node (ask for --gpus-per-node, not --gpus-per-task or a --gpu-bind that hides the others).
# - --batch-size is per GPU: one optimizer step sees nodes x GPUs x batch-size molecules (the learning rate
#   is not rescaled; pass --lr). DistributedSampler gives each rank a different part of every epoch.
# - Rank 0 writes the checkpoints, the loss log and summary.json to $MOLGEN_RUN; every rank reads
#   last.pt to resume, and the training arrays: both must be on a file system all nodes see
#   ($MOLGEN_CACHE for the dataset, default ~/.cache/molgen). Resubmitting resumes from last.pt.
# - The dataset is built (or found in the cache) once, by this batch script on the first node, before
#   srun starts the ranks, so they do not race; the CCD comes with biotite, so offline nodes are fine.
#   The build takes about an hour on 2 cores the first time (it resumes), with --cpus-per-task workers.
# - --num-workers 4 DataLoader processes per rank: --cpus-per-task should be at least 5.
# - NCCL picks the network itself; on nodes with several interfaces set NCCL_SOCKET_IFNAME (e.g. ib0).
#SBATCH --job-name=molgen-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=12:00:00
#SBATCH --output=logs/%x_%j.out
set -euo pipefail

# awk reads the whole list: with pipefail, `head -n 1` can make scontrol die of SIGPIPE (exit 141)
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | awk 'NR == 1')
MASTER_PORT=${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}
export MASTER_ADDR MASTER_PORT
# srun (Slurm >= 22.05) does not inherit --cpus-per-task from sbatch
export SRUN_CPUS_PER_TASK=${SLURM_CPUS_PER_TASK:-1}
echo "$SLURM_NTASKS ranks on $SLURM_JOB_NUM_NODES nodes ($SLURM_JOB_NODELIST), rendezvous $MASTER_ADDR:$MASTER_PORT" >&2

data=$(python -c "from molgen.training.pipeline import prepare_training_data; print(prepare_training_data(workers=${SLURM_CPUS_PER_TASK:-2}))")
srun python -m molgen.training.train_conformers --data "$data" --out "${MOLGEN_RUN:-runs/torsion_ccd}" \
  --device cuda --num-workers 4 "$@"
