#!/usr/bin/env bash
# Train an alanine-dipeptide model on replica 1's first 18 ns (its last 2 ns validate; replica 2 is never seen).
# protein_ala2_v1: STEPS=40000, MINUTES=30 then resumed with MINUTES=55, otherwise these defaults
# and the default network. Resumable: rerun the same command. MODEL_JSON overrides the network, e.g.
# MODEL_JSON='{"ns": 96, "nv": 16, "num_layers": 4}'. Export with
# `python -c "from molgen.training.pipeline import export_weights as e; e(Path(RUN)/'best.pt', Path(DEST), name=NAME)"`
# (with `from pathlib import Path`), which writes the weights and their model card.
set -euo pipefail
cd "$(dirname "$0")/../.."
D=data/protein/ala2_md
molgen protein train --top $D/rep1/topology.pdb --traj $D/rep1/trajectory.xtc --out "${RUN:-$HOME/.cache/molgen/runs/ala2_v2}" \
  --name alanine-dipeptide --val-fraction 0.1 --batch-size "${BATCH:-64}" --steps "${STEPS:-200000}" \
  --keep-frames "${KEEP:-1000}" --max-minutes "${MINUTES:-150}" --threads "${THREADS:-1}" --device cpu --model-json "${MODEL_JSON:-{\}}"
