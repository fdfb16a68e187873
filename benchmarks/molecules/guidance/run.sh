#!/usr/bin/env bash
# Guided generation on QM9 (issue 7): property MAE per guidance scale w, judged by a property regressor trained
# on EDM's D_a half (the generator trains on D_b), with the shuffled and data baselines, for alpha and gap.
# REGRESSOR: `molgen train property --property alpha --property gap --max-minutes 65 --threads 1` (best.pt).
set -euo pipefail
cd "$(dirname "$0")/../../.."
REGRESSOR=${REGRESSOR:-$HOME/.cache/molgen/runs/prop_alpha_gap_v1/best.pt}
for prop in alpha gap; do
  molgen bench molecules --samplers --guidance-sweep --regressor "$REGRESSOR" --property "$prop" \
    --guidance 0 0.5 1 2 3 --num-guided 500 --reference 500 --threads "${THREADS:-1}" \
    --out "benchmarks/molecules/guidance/$prop"
done
