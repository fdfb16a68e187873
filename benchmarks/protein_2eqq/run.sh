#!/usr/bin/env bash
# 2EQQ NMR ensemble (issue 8): a real experimental ensemble, 20 models of 28 residues with hydrogens
# (tests/data/protein/2EQQ.pdb). Odd-numbered models 1, 3, ..., 19 train (the last of them validates), even
# models 2, 4, ..., 20 are held out; "MD (training)" in the tables is the training models against the held-out
# ones. STEP=train trains (resumable), STEP=bench benchmarks.
set -euo pipefail
cd "$(dirname "$0")/../.."
PDB=tests/data/protein/2EQQ.pdb
RUN=${RUN:-$HOME/.cache/molgen/runs/2eqq_v1}
if [[ "${STEP:-train}" == train ]]; then
  molgen protein train --top $PDB --traj "$PDB@0:20:2" --out "$RUN" --name 2EQQ --val-fraction 0.1 \
    --keep-frames 10 --batch-size "${BATCH:-8}" --lr 1e-3 --max-minutes "${MINUTES:-20}" \
    --threads "${THREADS:-2}" --device cpu
else
  molgen bench protein --model "$RUN/best.pt" --top $PDB --train "$PDB@0:20:2" --heldout "$PDB@1:20:2" \
    -n "${NUM:-300}" --threads "${THREADS:-2}" ${SAMPLER_ARGS:-} --out "${OUT:-benchmarks/protein_2eqq}"
fi
