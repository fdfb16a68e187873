"""Protein I/O round trips: multi-model PDB and mmCIF through Biopython, XTC and DCD with a topology PDB through
mdtraj (atom count, residue names, coordinates); bad inputs and outputs get a message that names them."""

from __future__ import annotations

from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
from Bio.PDB import MMCIFParser, PDBParser

from molgen.errors import InputError
from molgen.protein.io import (
    load_structure,
    load_trajectory,
    to_biopython,
    topology_path_for,
    write_ensemble,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "protein"



@pytest.mark.parametrize("suffix,atol_nm", [(".pdb", 1e-4), (".cif", 1e-4), (".xtc", 1e-3), (".dcd", 1e-5)])
def test_round_trip(nmr, tmp_path, suffix, atol_nm):
    written = write_ensemble(nmr, tmp_path / f"ens{suffix}")
    assert written[0] == tmp_path / f"ens{suffix}" and written[0].is_file()
    if suffix in (".xtc", ".dcd"):
        assert written[1] == topology_path_for(written[0]) and written[1].is_file()
        back = md.load(str(written[0]), top=str(written[1]))
    else:
        back = md.load(str(written[0]))
    assert back.n_frames == nmr.n_frames == 20 and back.n_atoms == nmr.n_atoms == 423
    assert [r.name for r in back.topology.residues] == [r.name for r in nmr.topology.residues]
    assert [a.name for a in back.topology.atoms] == [a.name for a in nmr.topology.atoms]
    np.testing.assert_allclose(back.xyz, nmr.xyz, atol=atol_nm)
    assert not list(tmp_path.glob(".*part*"))  # no temporary file left


def test_biopython_reads_every_model(nmr, tmp_path):
    write_ensemble(nmr, tmp_path / "e.pdb")
    write_ensemble(nmr, tmp_path / "e.cif")
    for s in (PDBParser(QUIET=True).get_structure("p", tmp_path / "e.pdb"),
              MMCIFParser(QUIET=True).get_structure("c", tmp_path / "e.cif"),
              to_biopython(nmr)):  # fmt: skip
        assert len(s) == 20 and len(list(s[0].get_atoms())) == 423
        atom = next(s[3].get_atoms())
        np.testing.assert_allclose(atom.coord, nmr.xyz[3, 0] * 10.0, atol=1e-3)  # Å


def test_hydrogens_and_caps_kept(tmp_path):
    ala = load_structure(DATA / "alanine-dipeptide-implicit.pdb")
    write_ensemble(ala, tmp_path / "a.pdb")
    back = md.load(str(tmp_path / "a.pdb"))
    assert back.n_atoms == 22 and sum(a.element.symbol == "H" for a in back.topology.atoms) == 12
    assert [r.name for r in back.topology.residues] == ["ACE", "ALA", "NME"]
    assert "HETATM" not in (tmp_path / "a.pdb").read_text()


def test_bad_inputs_and_outputs(nmr, tmp_path):
    with pytest.raises(InputError, match="missing.pdb: file not found"):
        load_structure(tmp_path / "missing.pdb")
    (tmp_path / "junk.pdb").write_text("not a structure\n")
    with pytest.raises(InputError, match="junk.pdb"):
        load_structure(tmp_path / "junk.pdb")
    with pytest.raises(InputError, match="unknown format"):
        write_ensemble(nmr, tmp_path / "e.mol2")
    with pytest.raises(InputError, match="no structure"):
        write_ensemble(nmr[:0], tmp_path / "e.pdb")
    write_ensemble(nmr, tmp_path / "t.xtc")
    with pytest.raises(InputError, match="t.xtc"):  # a trajectory of another system
        load_trajectory(DATA / "alanine-dipeptide-implicit.pdb", [tmp_path / "t.xtc"])
    with pytest.raises(InputError, match="nope.xtc: file not found"):
        load_trajectory(DATA / "2EQQ.pdb", [tmp_path / "nope.xtc"])
    both = load_trajectory(topology_path_for(tmp_path / "t.xtc"), [tmp_path / "t.xtc", tmp_path / "t.xtc"], stride=2)
    assert both.n_frames == 20
    part = load_trajectory(DATA / "native.pdb", [f"{DATA / 'frame0.xtc'}@100:200", f"{DATA / 'frame0.xtc'}@:10"])
    whole = load_trajectory(DATA / "native.pdb", [DATA / "frame0.xtc"])
    assert part.n_frames == 110 and np.allclose(part.xyz[0], whole.xyz[100]) and np.allclose(part.xyz[100], whole.xyz[0])
