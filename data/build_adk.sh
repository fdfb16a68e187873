#!/usr/bin/env bash
# Adenylate kinase (AdK, E. coli, 214 residues, 3341 atoms with hydrogens; issue 8): the 98-frame DIMS
# closed -> open transition (adk_dims.dcd, CHARMM topology adk.psf) and the closed (1AKE) and open (4AKE)
# structures, from the MDAnalysisTests package (GPL-2.0-or-later / LGPL test data of MDAnalysis; Beckstein et
# al., J. Mol. Biol. 394 (2009) 160; not copied into this repository). Writes into $ADK_DIR (default
# ~/.cache/molgen/adk): adk_dims.dcd, adk_open.pdb, adk_closed.pdb and topology.pdb (the DCD's first frame
# with the PSF's topology, standard PDB names, for `molgen protein train --top`). Needs pip's registry once.
set -euo pipefail
ADK_DIR=${ADK_DIR:-$HOME/.cache/molgen/adk}
mkdir -p "$ADK_DIR"
cd "$ADK_DIR"
if [[ ! -f topology.pdb ]]; then
  ls mdanalysistests-*.tar.gz >/dev/null 2>&1 || pip download --no-deps mdanalysistests -d . >/dev/null
  SDIST=$(ls mdanalysistests-*.tar.gz | head -1)
  ROOT=${SDIST%.tar.gz}/MDAnalysisTests/data
  tar xzf "$SDIST" --strip-components=3 "$ROOT/adk.psf" "$ROOT/adk_dims.dcd" "$ROOT/adk_open.pdb" "$ROOT/adk_closed.pdb"
  python - <<'PY'
import mdtraj as md
t = md.load("adk_dims.dcd", top="adk.psf")
assert t.n_frames == 98 and t.n_atoms == 3341, (t.n_frames, t.n_atoms)
t[0].save_pdb("topology.pdb.tmp")
PY
  mv topology.pdb.tmp topology.pdb
fi
echo "$ADK_DIR: $(ls)"
