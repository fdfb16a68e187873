#!/usr/bin/env bash
# Data-parallel training on one node with several GPUs (torchrun starts one process per GPU), e.g.
#   cli/torchrun_train.sh 4 --steps 20000 --batch-size 64
#   MOLGEN_RUN=runs/big cli/torchrun_train.sh 8 --max-minutes 600
# The dataset is built (or found in the cache) first, by one process, so the ranks do not race. Rank 0
# writes checkpoints to $MOLGEN_RUN (default runs/torsion_ccd); rerunning resumes from last.pt.
# --batch-size is per GPU: one step sees GPUS x batch-size molecules.
#
# Several nodes: cli/slurm_train.sh (srun, one task per GPU). With torchrun instead, start one torchrun
# per node that meet at the first node (same MASTER_ADDR/MASTER_PORT on every node):
#   srun --ntasks-per-node=1 torchrun --nnodes="$SLURM_JOB_NUM_NODES" --nproc_per_node=4 \
#     --rdzv_backend=c10d --rdzv_id="$SLURM_JOB_ID" --rdzv_endpoint="$MASTER_ADDR:$MASTER_PORT" \
#     -m molgen.training.train_conformers --data "$data" --out runs/torsion_ccd --device cuda
set -euo pipefail
gpus=${1:?number of GPUs}
shift
data=$(python -c "from molgen.training.pipeline import prepare_training_data; print(prepare_training_data())")
torchrun --standalone --nproc_per_node "$gpus" -m molgen.training.train_conformers \
  --data "$data" --out "${MOLGEN_RUN:-runs/torsion_ccd}" --device cuda --num-workers 4 "$@"
