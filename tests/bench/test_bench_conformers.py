"""Smoke tests of the conformer benchmark on hand-made references (no CCD parsing).

The in-process tests use stand-in generators (no model); the end-to-end test runs the real
``molgen conformers`` and ETKDG baseline commands on three small molecules.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from bench_molecules import SMILES, references
from rdkit import Chem
from rdkit.Chem import rdDistGeom

from molgen.bench import conformers as bench
from molgen.bench.generators import make_etkdg_generator, make_molgen_generator
from molgen.bench.memory import run_measured
from molgen.bench.references import reject_reason, select_references
from molgen.bench.runner import run_one, summarize


def _fake_molgen(seed: int = 7):
    """Stands in for molgen: ETKDG conformers with another seed; fails on benzoic acid."""
    etkdg = make_etkdg_generator(seed=seed)

    def generate(smiles: str, n: int):
        if smiles == Chem.MolToSmiles(Chem.MolFromSmiles(SMILES["BEZ"])):
            raise RuntimeError("cannot embed (fake)")
        return etkdg(smiles, n)

    return generate


def test_reject_reason() -> None:
    ok = references()[0].mol
    assert reject_reason(ok) is None
    small = Chem.MolFromSmiles("CO")
    rdDistGeom.EmbedMolecule(small, randomSeed=1)
    assert reject_reason(small) == "heavy_atoms"
    metal = Chem.MolFromSmiles("CC(=O)O[Zn]OC(C)=O")
    assert reject_reason(metal) == "element"
    squashed = Chem.Mol(ok)
    conf = squashed.GetConformer()
    for i in range(squashed.GetNumAtoms()):
        conf.SetAtomPosition(i, (0.0, 0.0, 0.0))
    assert reject_reason(squashed) == "geometry"


def test_select_references_filters_split_and_is_seeded() -> None:
    from molgen.datasets.ccd import CCDLigand

    refs = references()
    ligands = [("XX1", "rdkit: bad"), ("XX2", "heldout")]
    for k, r in enumerate(refs):
        split = "train" if k == 0 else "test"
        ligands.append(CCDLigand(r.id, "1ABC", r.mol, Chem.MolToInchiKey(r.mol), "", split))
    dup = refs[1]
    ligands.append(CCDLigand("DUP", "2ABC", dup.mol, Chem.MolToInchiKey(dup.mol), "", "test"))
    chosen, stats = select_references(ligands, 1, sample_seed=3)
    again, _ = select_references(ligands, 1, sample_seed=3)
    assert [r.id for r in chosen] == [r.id for r in again]
    assert chosen[0].id in {"BEZ", "TYL"}
    assert stats["n_candidates"] == 2
    assert stats["filter_rejected"] == {"duplicate": 1}
    assert stats["split_counts"] == {"test": 3, "train": 1}
    assert stats["loader_rejected"] == {"heldout": 1, "rdkit": 1}


def test_benchmark_smoke(tmp_path) -> None:
    refs = references()
    out = tmp_path / "res"
    report = bench.main(
        ["--mode", "inprocess", "--out", str(out), "--ns", "1", "3", "--num-molecules", "3", "--no-progress"],
        references=refs,
        generators={"molgen": _fake_molgen()},
    )
    paths = {p: out / p for p in ("conformers.json", "conformers.md", "conformers_rmsd.png")}
    for p in paths.values():
        assert p.is_file() and p.stat().st_size > 0
    assert paths["conformers_rmsd.png"].read_bytes()[:4] == b"\x89PNG"

    data = json.loads(paths["conformers.json"].read_text())
    assert data["config"]["threads"] == data["config"]["rdkit_threads"] == 1
    assert data["machine"]["cores"] >= 1 and data["machine"]["rdkit"]
    assert len(data["molecules"]) == 3
    assert {(r["method"], r["n"]) for r in data["results"]} == {
        (m, n) for m in ("molgen", "etkdg") for n in (1, 3)
    }
    for r in data["results"]:
        s = r["summary"]
        assert s["n_molecules"] == 3
        for t in ("1", "1.5", "2"):
            assert 0.0 <= s[f"frac_below_{t}"] <= 1.0
        assert s["frac_below_1"] <= s["frac_below_1.5"] <= s["frac_below_2"]
        assert math.isfinite(s["median_min_rmsd"])
        assert s["mean_min_rmsd"] >= 0
        assert s["total_seconds"] > 0 and s["conformers_per_second"] > 0
        rows = r["per_molecule"]
        assert [p["id"] for p in rows] == [x.id for x in refs]
        assert s["total_conformers"] == sum(p["n_conformers"] for p in rows)
        finite = [p["min_rmsd"] for p in rows if p["min_rmsd"] is not None]
        assert s["n_failures"] == 3 - len(finite)
        assert all(0 <= v < 5 for v in finite)
        if r["method"] == "molgen":
            bez = next(p for p in rows if p["id"] == "BEZ")
            assert bez["min_rmsd"] is None and "fake" in bez["error"]
            assert s["n_failures"] == 1
        else:
            assert s["n_failures"] == 0
            assert s["total_conformers"] == 3 * r["n"]
    # more conformers can only help ETKDG (same seed, superset not guaranteed, so loosely)
    md = paths["conformers.md"].read_text()
    assert md.startswith("Command: `molgen bench conformers")
    assert md.count("| molgen |") == 2 and md.count("| etkdg |") == 2
    assert report["results"][0]["summary"]["n_molecules"] == 3


def test_failure_counts_as_infinite() -> None:
    rows = [
        {"id": "a", "min_rmsd": 0.5, "n_conformers": 2, "seconds": 0.1, "error": None},
        {"id": "b", "min_rmsd": math.inf, "n_conformers": 0, "seconds": 0.1, "error": "x"},
        {"id": "c", "min_rmsd": math.inf, "n_conformers": 0, "seconds": 0.1, "error": "x"},
    ]
    s = summarize(rows)
    assert s["median_min_rmsd"] is None  # inf: more than half failed
    assert s["mean_min_rmsd"] == pytest.approx(0.5)
    assert s["frac_below_1"] == pytest.approx(1 / 3)
    assert s["n_failures"] == 2
    assert s["conformers_per_second"] == pytest.approx(2 / 0.3)


def test_etkdg_generator_seeded() -> None:
    gen = make_etkdg_generator(seed=0, threads=1)
    a, b = gen(SMILES["TYL"], 3), gen(SMILES["TYL"], 3)
    assert a.GetNumConformers() == 3
    np.testing.assert_allclose(a.GetConformer(2).GetPositions(), b.GetConformer(2).GetPositions())


def test_molgen_generator_through_api(fake_sampler) -> None:
    """The real molgen path (molgen.api) with the ETKDG stand-in sampler of conftest."""
    gen = make_molgen_generator(model=None, steps=2, seed=3)
    mol = gen(SMILES["TYL"], 2)
    assert mol.GetNumConformers() >= 1
    ref = references()[2]
    row = run_one(gen, ref, 2, 1000)
    assert row["error"] is None and 0 <= row["min_rmsd"] < 5


def test_run_measured_reports_child_peak_rss_not_ours() -> None:
    import sys

    ballast = bytearray(300 * 2**20)  # make this process big; the child must not inherit it
    ballast[:: 4096] = b"\x01" * len(ballast[:: 4096])
    code = "x = bytearray(60 * 2**20); x[::4096] = b'1' * len(x[::4096]); print('done')"
    usage = run_measured([sys.executable, "-c", code], timeout=60)
    del ballast
    assert usage["exit_code"] == 0 and not usage["timed_out"]
    assert "done" in usage["output_tail"]
    assert 60 * 1024 <= usage["maxrss_kib"] < 250 * 1024
    assert usage["wall_seconds"] > 0
