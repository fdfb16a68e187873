#!/usr/bin/env bash
# Multi-node training under SLURM without torchrun: one task per GPU. molgen maps SLURM_PROCID,
# SLURM_LOCALID and SLURM_NTASKS to RANK, LOCAL_RANK and WORLD_SIZE (molgen.training.distributed).
#   sbatch --nodes=2 --ntasks-per-node=4 --gpus-per-node=4 cli/slurm_train.sh --steps 20000
#SBATCH --job-name=molgen-train
#SBATCH --time=12:00:00
#SBATCH --output=logs/%x_%j.out
set -euo pipefail
export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export MASTER_PORT=${MASTER_PORT:-29500}
data=$(python -c "from molgen.training.pipeline import prepare_training_data; print(prepare_training_data())")
srun python -m molgen.training.train_conformers --data "$data" --out "${MOLGEN_RUN:-runs/torsion_ccd}" \
  --device cuda --num-workers 4 "$@"
