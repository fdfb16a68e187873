#!/usr/bin/env bash
# Alanine dipeptide (issue 8): the shipped protein model against the held-out MD replica (rep2), with the
# training replica (rep1, its first 18 ns = the model's training frames) vs rep2 as the MD-vs-MD floor; MD's
# speed measured in the same run (200 ps of the same OpenMM setup, 1 thread). Data: data/build_ala2_md.sh.
# Tuning uses VAL=1: held out = rep1's last 2 ns (the model's validation frames), never rep2.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-molgen/weights/protein_ala2_v1.pt}
D=data/protein/ala2_md
HELDOUT=$D/rep2/trajectory.xtc
OUT=${OUT:-benchmarks/protein_ala2}
if [[ "${VAL:-0}" == 1 ]]; then HELDOUT=$D/rep1/trajectory.xtc@18000:20000; OUT=${OUT}_val; fi
molgen bench protein --model "$MODEL" --top $D/rep1/topology.pdb --train $D/rep1/trajectory.xtc@0:18000 \
  --heldout "$HELDOUT" -n "${NUM:-1000}" --threads 1 ${SAMPLER_ARGS:-} \
  --md-structure tests/data/protein/alanine-dipeptide-implicit.pdb --md-settings $D/rep1/settings.json \
  --md-ps 200 --md-frame-ps 1 --out "$OUT"
