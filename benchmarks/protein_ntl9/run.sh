#!/usr/bin/env bash
# NTL9 (mdCATH 2hbaA00, 320 K, 500 frames 1 ns apart; issue 8): train on the first 400 frames (the last 40 of
# them validate), evaluate on the last 100; MD-vs-MD = frames 0:400 vs 400:500. Data: ../shared/data/protein.
# STEP=train runs the training (resumable: rerun to continue), STEP=bench the benchmark. Sampler choices are made
# with VAL=1: held out = the model's validation frames 360:400, never 400:500.
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${NTL9_DIR:-../shared/data/protein/mdcath_2hbaA00}
RUN=${RUN:-$HOME/.cache/molgen/runs/ntl9_v1}
TRAJ=$D/2hbaA00_320_0.xtc
if [[ "${STEP:-train}" == train ]]; then
  molgen protein train --top $D/2hbaA00.pdb --traj "$TRAJ@0:400" --out "$RUN" --name NTL9 --val-fraction 0.1 \
    --keep-frames 360 --batch-size 4 --lr 1e-3 --max-minutes "${MINUTES:-140}" --threads "${THREADS:-2}" --device cpu
else
  HELDOUT="$TRAJ@400:500" OUT=${OUT:-benchmarks/protein_ntl9} TRAIN="$TRAJ@0:400"
  if [[ "${VAL:-0}" == 1 ]]; then HELDOUT="$TRAJ@360:400" TRAIN="$TRAJ@0:360" OUT=${OUT}_val; fi
  molgen bench protein --model "$RUN/best.pt" --top $D/2hbaA00.pdb --train "$TRAIN" --heldout "$HELDOUT" \
    -n "${NUM:-300}" --threads "${THREADS:-2}" ${SAMPLER_ARGS:-} --out "$OUT"
fi
