"""Bad input is never fatal: every bad record is reported by line and ID (stderr and failures.csv),
the run goes on and exits 1."""

from __future__ import annotations

import json
from pathlib import Path

from batchtools import cli, conformers_by_name, failures, read_sdf
from rdkit import Chem
from rdkit.Chem import AllChem


def _run_folder(inp: Path, out: Path, *extra: object):
    result = cli("conformers", inp, "-o", f"{out}/", "-n", "2", "--threads", "1", "--no-progress", "--json", *extra)
    assert result.exit_code == 1, result.output
    shard = out / "shard-00000-of-00001"
    summary = json.loads(result.stdout)
    assert summary["failed_file"] == str(shard / "failures.csv")
    written = {}
    for chunk in sorted(shard.glob("chunk-*.sdf")):
        written.update(conformers_by_name(chunk))
    return result, summary, failures(shard / "failures.csv"), written


def test_smiles_file_with_every_kind_of_bad_line(fake_sampler, tmp_path: Path) -> None:
    smi = tmp_path / "ligands.smi"
    smi.write_text(
        "CCO ethanol\n"  # 1
        "C1CC( broken\n"  # 2
        "\n"  # 3: empty lines are not molecules
        "CCN ethanol\n"  # 4: duplicate ID
        "Cl.C[C@@H](N)c1ccccc1 amine_hcl\n"  # 5: salt, the largest fragment is kept
        "CCCCCCCCCCCCCCCCCCCC big\n"  # 6: over --max-heavy-atoms
        "   \n"  # 7
        "c1cccc1 kekule\n"  # 8
        "CC(=O)O acetic\n"  # 9: the run went on
    )
    result, summary, rows, written = _run_folder(smi, tmp_path / "out", "--max-heavy-atoms", "12",
                                                 "--chunk-size", "3")
    assert [(r["source"], r["name"]) for r in rows] == [
        ("ligands.smi:2", "broken"), ("ligands.smi:4", "ethanol"), ("ligands.smi:6", "big"),
        ("ligands.smi:8", "kekule"),
    ]
    assert rows[0]["smiles_or_record"] == "C1CC(" and "syntax error" in rows[0]["reason"]
    assert rows[1]["smiles_or_record"] == "CCN"
    assert "duplicate ID 'ethanol'" in rows[1]["reason"] and "ligands.smi:1" in rows[1]["reason"]
    assert "too large: 20 heavy atoms (limit 12" in rows[2]["reason"]
    assert "kekulize" in rows[3]["reason"]
    for row in rows:
        assert f"FAILED {row['source']} ({row['name']})" in result.stderr
    assert summary["molecules_ok"] == 3 and summary["molecules_failed"] == 4
    assert sorted(written) == ["acetic", "amine_hcl", "ethanol"]
    # ethanol is the first record of that ID (CCO, 3 heavy atoms), not the duplicate
    (mol,) = [m for m in read_sdf(tmp_path / "out/shard-00000-of-00001/chunk-000000.sdf")
              if m.GetProp("_Name") == "ethanol"][:1]
    assert mol.GetNumHeavyAtoms() == 3 and any(a.GetSymbol() == "O" for a in mol.GetAtoms())
    # the salt: no chloride, the stereocentre kept
    salt = [m for p in sorted((tmp_path / "out/shard-00000-of-00001").glob("chunk-*.sdf")) for m in read_sdf(p)
            if m.GetProp("_Name") == "amine_hcl"]
    assert len(salt) == 2
    for m in salt:
        assert all(a.GetSymbol() != "Cl" for a in m.GetAtoms())
        Chem.AssignStereochemistryFrom3D(m)
        assert Chem.MolToSmiles(Chem.RemoveHs(m)) == Chem.CanonSmiles("C[C@@H](N)c1ccccc1")


def test_keep_salts_keeps_every_fragment(fake_sampler, tmp_path: Path) -> None:
    out = tmp_path / "salt.sdf"
    result = cli("conformers", "[Na+].[O-]C(=O)C", "-o", out, "-n", "1", "--threads", "1", "--keep-salts")
    assert result.exit_code == 0, result.output
    (mol,) = read_sdf(out)
    assert len(Chem.GetMolFrags(mol)) == 2
    result = cli("-v", "conformers", "[Na+].[O-]C(=O)C", "-o", out, "-n", "1", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "removed fragment(s) [Na+]" in result.stderr
    (mol,) = read_sdf(out)
    assert len(Chem.GetMolFrags(mol)) == 1


def test_csv_with_empty_and_broken_cells(fake_sampler, tmp_path: Path) -> None:
    table = tmp_path / "lib.csv"
    table.write_text("id,smiles\na,CCO\nb,\nc,XX\n\nd,CCN\n,CCC\n")
    result, summary, rows, written = _run_folder(table, tmp_path / "out", "--id-col", "id")
    assert [(r["source"], r["name"]) for r in rows] == [("lib.csv:3", "b"), ("lib.csv:4", "c")]
    assert rows[0]["reason"] == "empty SMILES"
    assert rows[1]["smiles_or_record"] == "XX"
    assert "FAILED lib.csv:3 (b): empty SMILES" in result.stderr
    assert sorted(written) == ["a", "d", "mol_5"]  # an empty ID cell: named by its index
    assert summary["molecules_ok"] == 3 and summary["molecules_failed"] == 2


def _molblock(smiles: str, name: str) -> str:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    mol.SetProp("_Name", name)
    return Chem.MolToMolBlock(mol) + "$$$$\n"


def test_sdf_with_a_broken_record(fake_sampler, tmp_path: Path) -> None:
    good = _molblock("C[C@@H](N)c1ccccc1", "amine")
    broken = _molblock("CCO", "broken").replace(" 1  2  1  0", " 1 99  1  0")  # a bond to atom 99
    last = _molblock("CC(=O)O", "acetic")
    sdf = tmp_path / "lib.sdf"
    sdf.write_text(good + broken + last)
    start = good.count("\n") + 1
    result, summary, rows, written = _run_folder(sdf, tmp_path / "out")
    assert [(r["source"], r["name"], r["smiles_or_record"]) for r in rows] == [(f"lib.sdf:{start}", "broken", "record 2")]
    assert rows[0]["reason"]
    assert f"FAILED lib.sdf:{start} (broken)" in result.stderr
    assert sorted(written) == ["acetic", "amine"]
    assert summary["molecules_ok"] == 2 and summary["molecules_failed"] == 1


def test_a_molecule_that_breaks_the_packed_call_fails_alone(fake_sampler, tmp_path: Path) -> None:
    """An error of the sampler for one molecule of a unit (here: raised out of the packed call) fails
    that molecule only; its neighbours are sampled again on their own."""

    def explode(mol, seed) -> None:
        if mol.GetProp("_Name") == "bomb":
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    fake_sampler.perturb = explode
    smi = tmp_path / "in.smi"
    smi.write_text("CCO a\nCCCO bomb\nCCN b\n")
    _, _, rows, written = _run_folder(smi, tmp_path / "out")
    assert [(r["source"], r["name"]) for r in rows] == [("in.smi:2", "bomb")]
    assert rows[0]["reason"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert sorted(written) == ["a", "b"]
