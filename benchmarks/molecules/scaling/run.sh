#!/usr/bin/env bash
# Issue 7: how atom/molecule stability and validity grow with training steps on this machine, to show how far
# the CPU budget is from the targets. Same recipe as the shipped qm9_edm_v1 (conditions alpha, gap,
# num_heavy_atoms; batch 64; lr 7e-4 with cosine decay over the run) trained for STEPS_LIST steps on
# THREADS threads, each run annealed over its own length; every run, plus the shipped 25,000-step model, is
# scored by `molgen bench molecules` with DDIM-100 on NUM samples. Resumable: finished runs and benches are
# skipped. Then `python -m molgen.bench.scaling_report` writes scaling.md and scaling.png.
set -euo pipefail
cd "$(dirname "$0")/../../.."
RUNS=${RUNS:-$HOME/.cache/molgen/runs}
OUT=${OUT:-benchmarks/molecules/scaling}
THREADS=${THREADS:-1}
NUM=${NUM:-1000}
for S in ${STEPS_LIST:-2000 4000 8000}; do
  RUN=$RUNS/qm9_scale_$S
  if [[ ! -f $RUN/summary.json ]]; then
    molgen train molecules --condition alpha --condition gap --condition num_heavy_atoms --steps "$S" \
      --threads "$THREADS" --device cpu --out "$RUN"
  fi
  if [[ ! -f $OUT/steps_$S/molecules.json ]]; then
    molgen bench molecules --model "$RUN/best.pt" --num "$NUM" --samplers ddim:100 --threads "$THREADS" \
      --reference 200 --geometry-samples 200 --out "$OUT/steps_$S"
  fi
done
if [[ ! -f $OUT/steps_25000/molecules.json ]]; then
  molgen bench molecules --model molgen/weights/qm9_edm_v1.pt --num "$NUM" --samplers ddim:100 \
    --threads "$THREADS" --reference 200 --geometry-samples 200 --out "$OUT/steps_25000"
fi
python -m molgen.bench.scaling_report "$OUT"
