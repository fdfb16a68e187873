#!/usr/bin/env bash
# Reference MD of alanine dipeptide (issue 8): two independent 20 ns replicas, amber14 + OBC2 implicit solvent,
# Langevin 300 K, 1/ps friction, 2 fs steps, H-bonds constrained, 100 ps unrecorded equilibration, frames
# every 1 ps; then exported into data/protein/ala2_md/rep{1,2}/ (trajectory.xtc, topology.pdb, settings, speed).
# Resumable: rerun the same command after an interruption and each replica continues from its saved state.
# Runs in ~/.cache/molgen/md (override with MD_DIR). On 2 cores: about 1 h per replica with 1 thread each.
set -euo pipefail
cd "$(dirname "$0")/.."
MD_DIR=${MD_DIR:-$HOME/.cache/molgen/md}
PDB=tests/data/protein/alanine-dipeptide-implicit.pdb
for rep in 1 2; do
  molgen protein simulate "$PDB" -o "$MD_DIR/ala2_rep$rep" --ns 20 --seed "$rep" --threads "${THREADS:-1}"
  python -c "from molgen.protein.simulate import export_run; print(export_run('$MD_DIR/ala2_rep$rep', 'data/protein/ala2_md/rep$rep'))"
done
