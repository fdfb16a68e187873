"""Readers and writers of molgen.chem.io."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdDistGeom

from molgen.chem.io import (
    ConformerWriter,
    MoleculeRecord,
    open_atomic,
    parse_smiles,
    prepare_molecule,
    read_conformers_sdf,
    read_molecules,
)
from molgen.errors import InputError


def _embedded(smiles: str, n: int = 3, name: str | None = None, seed: int = 7) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed
    rdDistGeom.EmbedMultipleConfs(mol, n, params)
    mol.SetProp("_Name", name or smiles)
    return mol


def _with_props(mol: Chem.Mol) -> Chem.Mol:
    for k, conf in enumerate(mol.GetConformers()):
        conf.SetIntProp("conf_id", k)
        conf.SetIntProp("seed", 42)
        conf.SetProp("model", "fake-etkdg")
        conf.SetProp("sampler", "ode")
        conf.SetIntProp("steps", 20)
        conf.SetDoubleProp("energy", 10.0 + k)
        conf.SetDoubleProp("delta_energy", float(k))
    return mol


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


# ----------------------------------------------------------------------------- SMILES


def test_single_smiles_is_prepared() -> None:
    (rec,) = list(read_molecules("CC(=O)Nc1ccc(O)cc1"))
    assert isinstance(rec, MoleculeRecord)
    assert rec.ok and rec.error is None
    assert rec.source == "<smiles>" and rec.name == "CC(=O)Nc1ccc(O)cc1"
    assert rec.mol.GetNumAtoms() == 20  # explicit hydrogens added
    assert rec.mol.GetProp("_Name") == rec.name


def test_single_smiles_keeps_stereo() -> None:
    (rec,) = list(read_molecules("C/C=C/[C@@H](O)[C@H](N)C(=O)O"))
    mol = rec.mol
    cip = {a.GetIdx(): a.GetProp("_CIPCode") for a in mol.GetAtoms() if a.HasProp("_CIPCode")}
    assert cip == {3: "R", 5: "S"}
    assert mol.GetBondBetweenAtoms(1, 2).GetStereo() == Chem.BondStereo.STEREOE


def test_invalid_single_smiles_gives_error_record() -> None:
    (rec,) = list(read_molecules("C1CC("))
    assert rec.mol is None
    assert "C1CC(" in rec.error and "no file" in rec.error


@pytest.mark.parametrize("name", ["ligands.smi", "data/ligands.sdf", "x.csv", "mols.smi.gz"])
def test_missing_file_with_known_suffix(name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="file not found"):
        read_molecules(name)


def test_smi_file_names_comments_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "ligands.smi"
    path.write_text(
        "# a comment\n"
        "smiles name\n"
        "CCO ethanol\n"
        "\n"
        "C1CC( broken ring\n"
        "c1cccc1\n"
        "CC(=O)Nc1ccc(O)cc1   para cetamol  \n"
        "C(C)(C)(C)(C)C pentavalent\n"
    )
    records = list(read_molecules(path))
    assert [r.name for r in records] == [
        "ethanol",
        "broken ring",
        "mol_3",
        "para cetamol",
        "pentavalent",
    ]
    assert [r.source for r in records] == [
        "ligands.smi:3",
        "ligands.smi:5",
        "ligands.smi:6",
        "ligands.smi:7",
        "ligands.smi:8",
    ]
    assert [r.ok for r in records] == [True, False, False, True, False]
    assert "ligands.smi:5" in records[1].error and "syntax error" in records[1].error
    assert "kekulize" in records[2].error
    assert "valence" in records[4].error.lower()
    assert records[1].raw == "C1CC("


def test_str_path_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "mols.smi.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("CCO a\nCCN b\n")
    records = list(read_molecules(str(path)))
    assert [r.name for r in records] == ["a", "b"] and all(r.ok for r in records)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.smi"
    path.write_text("# only a comment\n\n")
    with pytest.raises(InputError, match="contains no molecules"):
        read_molecules(path)


def test_unsupported_suffix_and_directory(tmp_path: Path) -> None:
    path = tmp_path / "mols.mol2"
    path.write_text("x")
    with pytest.raises(InputError, match="unsupported input format"):
        read_molecules(path)
    with pytest.raises(InputError, match="directory"):
        read_molecules(tmp_path)


# ----------------------------------------------------------------------------- CSV


def test_csv_columns(tmp_path: Path) -> None:
    path = tmp_path / "lib.csv"
    path.write_text("ID,SMILES,activity\nm1,CCO,1.0\nm2,,2.0\n\nm3,C1CC(,3\n,c1ccccc1,4\n")
    records = list(read_molecules(path, smiles_col="SMILES", id_col="ID"))
    assert [r.name for r in records] == ["m1", "m2", "m3", "mol_4"]
    assert [r.source for r in records] == ["lib.csv:2", "lib.csv:3", "lib.csv:5", "lib.csv:6"]
    assert [r.ok for r in records] == [True, False, False, True]
    assert "empty SMILES" in records[1].error
    # default smiles_col="smiles" matches "SMILES" case-insensitively
    assert next(read_molecules(path)).name == "mol_1"


def test_csv_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "lib.csv"
    path.write_text("ID,structure\nm1,CCO\n")
    with pytest.raises(InputError) as err:
        read_molecules(path)
    assert "'smiles'" in str(err.value) and "'ID', 'structure'" in str(err.value)
    with pytest.raises(InputError, match="'name'"):
        read_molecules(path, smiles_col="structure", id_col="name")


def test_csv_empty(tmp_path: Path) -> None:
    path = tmp_path / "lib.csv"
    path.write_text("")
    with pytest.raises(InputError, match="contains no molecules"):
        read_molecules(path)
    path.write_text("smiles,name\n")
    with pytest.raises(InputError, match="contains no molecules"):
        read_molecules(path)


# ----------------------------------------------------------------------------- SDF


def test_sdf_names_and_3d_stereo(tmp_path: Path) -> None:
    mol = _embedded("C[C@H](N)C(=O)O", n=1, name="L-alanine")
    mirror = Chem.Mol(mol)
    conf = mirror.GetConformer()
    for i in range(mirror.GetNumAtoms()):
        p = conf.GetAtomPosition(i)
        conf.SetAtomPosition(i, (p.x, p.y, -p.z))
    # Strip the chiral tags of the mirror image: its stereo must come from the 3D coordinates.
    for atom in mirror.GetAtoms():
        atom.SetChiralTag(Chem.ChiralType.CHI_UNSPECIFIED)
    mirror.SetProp("_Name", "")
    path = tmp_path / "in.sdf"
    with Chem.SDWriter(str(path)) as w:
        w.write(mol)
        w.write(mirror)
    records = list(read_molecules(path))
    assert [r.name for r in records] == ["L-alanine", "mol_2"]
    assert records[0].source == "in.sdf:1"
    cips = [r.mol.GetAtomWithIdx(1).GetProp("_CIPCode") for r in records]
    assert cips == ["S", "R"]
    assert records[0].mol.GetNumAtoms() == mol.GetNumAtoms()


def test_sdf_bad_record_is_reported(tmp_path: Path) -> None:
    good = Chem.MolToMolBlock(Chem.MolFromSmiles("CCO"))
    bad = Chem.MolToMolBlock(Chem.MolFromSmiles("C(C)(C)(C)(C)C", sanitize=False))
    path = tmp_path / "in.sdf"
    path.write_text(f"{good}$$$$\n{bad}$$$$\n{good}$$$$\n")
    records = list(read_molecules(path))
    assert [r.ok for r in records] == [True, False, True]
    n_lines = good.count("\n") + 1
    assert records[1].source == f"in.sdf:{n_lines + 1}"
    assert "valence" in records[1].error.lower()
    assert records[1].raw == "record 2"


# ----------------------------------------------------------------------------- helpers


def test_parse_smiles_and_prepare_molecule() -> None:
    mol = parse_smiles("OCC", name="ethanol")
    assert mol.GetNumAtoms() == 9 and mol.GetProp("_Name") == "ethanol"
    with pytest.raises(InputError, match="invalid SMILES"):
        parse_smiles("C1CC(")
    prepared = prepare_molecule(Chem.MolFromSmiles("C[C@H](N)O"))
    assert prepared.GetNumAtoms() == 11 and prepared.GetProp("_Name") == "C[C@H](N)O"
    with pytest.raises(InputError):
        prepare_molecule(None)


# ----------------------------------------------------------------------------- writers


def test_sdf_round_trip_with_tags(tmp_path: Path) -> None:
    a = _with_props(_embedded("CC(=O)Nc1ccc(O)cc1", n=3, name="paracetamol"))
    b = _with_props(_embedded("C[C@H](N)C(=O)O", n=2, name="alanine"))
    b.GetConformer(0).SetProp("note", "extra")
    path = tmp_path / "out.sdf"
    with ConformerWriter(path) as w:
        assert w.write(a) == 3
        assert w.write(b) == 2
    assert w.n_conformers == 5 and w.n_molecules == 2
    text = path.read_text()
    assert text.count("$$$$") == 5
    first = text.split("$$$$")[0]
    tags = [line for line in first.splitlines() if line.startswith(">")]
    assert tags == [
        ">  <conf_id>",
        ">  <seed>",
        ">  <model>",
        ">  <sampler>",
        ">  <steps>",
        ">  <energy>",
        ">  <delta_energy>",
    ]
    mols = read_conformers_sdf(path)
    assert [m.GetProp("_Name") for m in mols] == ["paracetamol", "alanine"]
    assert [m.GetNumConformers() for m in mols] == [3, 2]
    props = mols[0].GetConformer(1).GetPropsAsDict()
    assert props == {
        "conf_id": 1,
        "seed": 42,
        "model": "fake-etkdg",
        "sampler": "ode",
        "steps": 20,
        "energy": 11.0,
        "delta_energy": 1.0,
    }
    assert mols[1].GetConformer(0).GetProp("note") == "extra"
    for orig, back in zip([a, b], mols):
        for c0, c1 in zip(orig.GetConformers(), back.GetConformers()):
            assert np.allclose(c0.GetPositions(), c1.GetPositions(), atol=1e-3)
    assert mols[1].GetAtomWithIdx(1).GetProp("_CIPCode") == "S"


def test_xyz_and_pdb(tmp_path: Path) -> None:
    mol = _with_props(_embedded("CCO", n=2, name="ethanol"))
    xyz = tmp_path / "out.xyz"
    with ConformerWriter(xyz) as w:
        w.write(mol)
    lines = xyz.read_text().splitlines()
    assert lines[0] == "9" and lines[1].startswith("ethanol conf_id=0 energy=10.0000")
    assert lines[11] == "9" and lines[12].startswith("ethanol conf_id=1")
    assert len(lines) == 2 * 11

    pdb = tmp_path / "out.pdb"
    with ConformerWriter(pdb) as w:
        w.write(mol)
        w.write(mol)
    text = pdb.read_text()
    assert text.count("COMPND    ethanol") == 2
    assert [ln.split()[1] for ln in text.splitlines() if ln.startswith("MODEL")] == [
        "1",
        "2",
        "3",
        "4",
    ]
    assert text.count("ENDMDL") == 4 and text.rstrip().endswith("END")
    assert sum(ln.startswith("HETATM") for ln in text.splitlines()) == 4 * 9


def test_explicit_format_and_bad_suffix(tmp_path: Path) -> None:
    mol = _embedded("CCO", n=1)
    with ConformerWriter(tmp_path / "confs.txt", fmt="xyz") as w:
        w.write(mol)
    assert (tmp_path / "confs.txt").read_text().startswith("9\n")
    with pytest.raises(InputError, match="unsupported"):
        ConformerWriter(tmp_path / "out.mol2")


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    mol = _embedded("CCO", n=2)
    path = tmp_path / "out.sdf"
    with pytest.raises(RuntimeError), ConformerWriter(path) as w:
        w.write(mol)
        assert not path.exists()  # still under a temporary name
        raise RuntimeError("boom")
    assert not path.exists()
    assert _leftovers(tmp_path) == []

    path.write_text("previous result\n")
    with pytest.raises(RuntimeError), ConformerWriter(path) as w:
        w.write(mol)
        raise RuntimeError("boom")
    assert path.read_text() == "previous result\n"
    assert _leftovers(tmp_path) == []

    with ConformerWriter(path) as w:
        w.write(mol)
    assert path.read_text().count("$$$$") == 2
    assert _leftovers(tmp_path) == []


def test_unwritable_output(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        ConformerWriter(tmp_path / "missing_dir" / "out.sdf")
    (tmp_path / "adir.sdf").mkdir()
    with pytest.raises(InputError, match="directory"):
        ConformerWriter(tmp_path / "adir.sdf")


def test_open_atomic(tmp_path: Path) -> None:
    path = tmp_path / "failed.csv"
    with open_atomic(path) as fh:
        fh.write("a,b\n")
    assert path.read_text() == "a,b\n"
    with pytest.raises(ValueError), open_atomic(path) as fh:
        fh.write("partial")
        raise ValueError("x")
    assert path.read_text() == "a,b\n" and _leftovers(tmp_path) == []
