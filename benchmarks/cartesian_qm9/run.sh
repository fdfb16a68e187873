#!/usr/bin/env bash
# Cartesian conformers vs molgen's torsional model vs ETKDG on QM9 test-split DFT geometries (issue 7, point 8):
# min heavy-atom RMSD at N = 1 and 10, in process, 1 thread each, same run.
# MODEL: `molgen train cartesian --max-minutes 75 --threads 1` (best.pt), or the shipped one when there is one.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-$HOME/.cache/molgen/runs/cartesian_v1/best.pt}
molgen bench conformers --mode inprocess --set qm9 --num-molecules "${NUM:-200}" --ns 1 10 \
  --methods molgen cartesian etkdg --cartesian-model "$MODEL" --threads 1 --out benchmarks/cartesian_qm9
