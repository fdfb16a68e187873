#!/usr/bin/env bash
# Data-parallel training on one node with several GPUs (torchrun), e.g.
#   cli/torchrun_train.sh 4 --steps 20000 --batch-size 64
# The dataset is built (or found in the cache) first, by one process, so ranks do not race.
set -euo pipefail
gpus=${1:?number of GPUs}; shift
python -c "from molgen.training.pipeline import prepare_training_data; print(prepare_training_data())" > .molgen_data_path
torchrun --standalone --nproc_per_node "$gpus" -m molgen.training.train_conformers \
  --data "$(cat .molgen_data_path)" --out "${MOLGEN_RUN:-runs/torsion_ccd}" --device cuda --num-workers 4 "$@"
