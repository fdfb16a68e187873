#!/usr/bin/env bash
# Adenylate kinase closed -> open (issue 8): a large conformational change. The 98-frame DIMS transition
# (data/build_adk.sh) is split by frame parity: even frames train (49), frames 3, 7, 11, ... validate (24) and
# frames 1, 5, 9, ... are held out for the benchmark (25), so the model must fill in the path between the
# frames it saw. Reference states: the closed (1AKE) and open (4AKE) crystal structures. MD-vs-MD: the training
# frames against the held-out ones. STEP=train trains (resumable), STEP=bench benchmarks; VAL=1 benchmarks on
# the validation frames instead (for sampler choices), never on the held-out ones.
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${ADK_DIR:-$HOME/.cache/molgen/adk}
[[ -f $D/topology.pdb ]] || ADK_DIR=$D data/build_adk.sh
RUN=${RUN:-$HOME/.cache/molgen/runs/adk_v1}
DCD=$D/adk_dims.dcd
# 1,656 heavy atoms: the default network (3 layers, 5 Å) costs about 3 s per step of 2 frames on 1 thread; two
# layers on a 4 Å graph, one frame per step, buy several times more steps in the same budget
CHEAP='{"num_layers": 2, "radius": 4.0}'
if [[ "${STEP:-train}" == train ]]; then
  molgen protein train --top $D/topology.pdb --traj "$DCD@0:98:2" --val-traj "$DCD@3:98:4" --out "$RUN" \
    --name "adenylate kinase" --keep-frames 49 --batch-size "${BATCH:-1}" --lr 1e-3 \
    --max-minutes "${MINUTES:-45}" --threads "${THREADS:-2}" --device cpu --model-json "${MODEL_JSON:-$CHEAP}"
else
  HELDOUT="$DCD@1:98:4" OUT=${OUT:-benchmarks/protein_adk}
  if [[ "${VAL:-0}" == 1 ]]; then HELDOUT="$DCD@3:98:4" OUT=${OUT}_val; fi
  molgen bench protein --model "$RUN/best.pt" --top $D/topology.pdb --train "$DCD@0:98:2" \
    --heldout "$HELDOUT" --state closed=$D/adk_closed.pdb --state open=$D/adk_open.pdb \
    -n "${NUM:-200}" --threads "${THREADS:-2}" ${SAMPLER_ARGS:-} --out "$OUT"
fi
