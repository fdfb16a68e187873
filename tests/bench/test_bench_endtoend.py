"""End-to-end benchmark mode: ETKDG baseline command, SDF grouping, PoseBusters rate, MOSES file,
reference cache, and one real run of both commands on three small molecules (no timing assertions)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from bench_molecules import SMILES, references
from rdkit import Chem
from rdkit.Chem import rdDistGeom

from molgen.bench import conformers as bench
from molgen.bench.endtoend import etkdg_command, read_sdf_conformers, write_smiles
from molgen.bench.references import (
    Filters,
    Reference,
    _cache_key,
    _save_candidates,
    load_references,
    moses_path,
    read_smiles_file,
)


def _embedded(smiles: str, n: int, seed: int = 7) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed
    assert len(rdDistGeom.EmbedMultipleConfs(mol, n, params)) == n
    return mol


def test_etkdg_baseline_command_writes_n_conformers_per_molecule(tmp_path: Path) -> None:
    smi = write_smiles([Reference.from_smiles(k, v) for k, v in SMILES.items()], tmp_path / "in.smi")
    with open(smi, "a") as fh:
        fh.write("# a comment\n\nnot_a_smiles BAD\n")
    sdf = tmp_path / "etkdg.sdf"
    done = subprocess.run(etkdg_command(smi, sdf, 3, threads=1), check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr  # BAD failed, the rest embedded
    assert "BAD" in done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["molecules"] == 4 and summary["molecules_failed"] == 1
    assert summary["conformers_written"] == 9
    titles = [m.GetProp("_Name") for m in Chem.SDMolSupplier(str(sdf), removeHs=False)]
    assert titles == [k for k in SMILES for _ in range(3)]
    mols, bad = read_sdf_conformers(sdf)
    assert bad == 0 and {k: m.GetNumConformers() for k, m in mols.items()} == dict.fromkeys(SMILES, 3)
    first = mols["TYL"]
    assert first.GetNumAtoms() == Chem.AddHs(Chem.MolFromSmiles(SMILES["TYL"])).GetNumAtoms()
    a, b = (first.GetConformer(c).GetPositions() for c in (0, 1))
    assert not (abs(a - b) < 1e-6).all()  # nonzero seed: distinct conformers


def test_read_sdf_conformers_groups_by_title(tmp_path: Path) -> None:
    sdf = tmp_path / "mixed.sdf"
    a, b = _embedded(SMILES["TYL"], 2), _embedded(SMILES["BEZ"], 2)
    a.SetProp("_Name", "A")
    b.SetProp("_Name", "B")
    with Chem.SDWriter(str(sdf)) as w:
        for mol, cid in ((a, 0), (b, 0), (a, 1), (b, 1)):  # interleaved records
            w.write(mol, confId=cid)
    with open(sdf, "a") as fh:  # a broken record
        fh.write("junk\n\n\n  0  0  0  0  0  0  0  0  0  0999 V3000\nM  END\n$$$$\n")
    mols, bad = read_sdf_conformers(sdf)
    assert list(mols) == ["A", "B"]
    assert mols["A"].GetNumConformers() == 2 and mols["B"].GetNumConformers() == 2
    assert bad == 1
    assert (abs(mols["A"].GetConformer(1).GetPositions() - a.GetConformer(1).GetPositions()) < 1e-3).all()


def test_posebusters_rate_on_two_etkdg_conformers() -> None:
    pytest.importorskip("posebusters")
    from molgen.bench.posebusters_rate import posebusters_rate

    mol = _embedded(SMILES["TYL"], 2)
    res = posebusters_rate({"TYL": mol, "none": None})
    assert res["n_conformers"] == 2 and res["n_molecules"] == 1
    assert 0.0 <= res["pass_rate"] <= 1.0
    assert res["per_molecule"] == {"TYL": [2, res["n_passed"]]}
    assert "bond_lengths" in res["checks"] and set(res["failures_by_check"]) == set(res["checks"])
    assert res["n_passed"] == 2  # ETKDG paracetamol is plausible
    squashed = Chem.Mol(mol)
    squashed.GetConformer(1).SetAtomPosition(0, squashed.GetConformer(1).GetAtomPosition(1))
    res = posebusters_rate({"TYL": squashed}, sample=1, seed=3)
    assert res["n_conformers"] == 1
    bad = posebusters_rate({"TYL": squashed})
    assert bad["n_passed"] == 1 and bad["failures_by_check"]["bond_lengths"] == 1


def test_moses_file_has_no_heldout_molecules() -> None:
    from molgen.datasets.split import inchikey_block, is_heldout

    path = moses_path()
    if not path.is_file():
        pytest.skip("data/moses_test_1000.smi is not in this checkout")
    rows = read_smiles_file(path)
    assert len(rows) == 1000 and len({i for i, _ in rows}) == 1000
    assert all(i.startswith("moses_test_") for i, _ in rows)
    for _, smi in rows:
        mol = Chem.MolFromSmiles(smi)
        assert mol is not None
        assert not is_heldout(inchikey_block(Chem.MolToInchiKey(mol)))


def test_load_references_uses_the_cache(tmp_path: Path) -> None:
    refs = references()
    f = Filters()
    path = tmp_path / "bench_refs_v1" / f"test_{_cache_key(f, 'test')}.pkl"
    path.parent.mkdir(parents=True)
    _save_candidates(path, refs, {"n_candidates": 3, "split": "test"})
    chosen, stats = load_references(2, sample_seed=1, filters=f, cache_dir=tmp_path)
    assert stats["cache"] == {"path": str(path), "hit": True}
    assert len(chosen) == 2 and stats["n_selected"] == 2
    by_id = {r.id: r for r in refs}
    for r in chosen:
        assert r.smiles == by_id[r.id].smiles and r.n_rotatable_bonds == by_id[r.id].n_rotatable_bonds
        assert Chem.MolToSmiles(r.mol) == r.smiles
        assert r.mol.GetConformer().GetPositions().tolist() == by_id[r.id].mol.GetConformer().GetPositions().tolist()


def test_endtoend_runs_both_commands_and_reports(tmp_path: Path) -> None:
    """Real `molgen conformers` (shipped model) and ETKDG baseline on 3 molecules, N = 2."""
    pytest.importorskip("posebusters")
    out = tmp_path / "e2e"
    report = bench.main(
        ["--out", str(out), "--ns", "2", "--num-molecules", "3", "--posebusters-sample", "1",
         "--no-warmup", "--no-progress"],
        references=references(),
    )  # fmt: skip
    data = json.loads((out / "conformers.json").read_text())
    assert data["config"]["mode"] == "endtoend"
    assert data["command"].startswith("molgen bench conformers --out")
    for key in ("cpu", "cores", "git_commit", "rdkit", "molgen"):
        assert key in data["machine"]
    assert data["date"] and (out / "molecules.smi").read_text().count("\n") == 3
    rows = data["endtoend"]["rows"]
    assert [(r["tool"], r["setting"]) for r in rows] == [
        ("molgen", "defaults"), ("etkdg", "defaults"), ("molgen", "threads=1"), ("etkdg", "threads=1"),
    ]
    keys = {"tool", "threads", "n", "molecules", "molecules_with_conformers", "conformers", "wall_seconds",
            "conformers_per_second", "ratio_same_threads", "ratio_vs_etkdg_defaults", "quality",
            "posebusters", "peak_rss_mib", "command", "runs", "per_molecule"}  # fmt: skip
    for r in rows:
        assert keys <= set(r), keys - set(r)
        assert r["runs"][0]["exit_code"] == 0, r["runs"][0]["output_tail"]
        assert r["n"] == 2 and r["molecules"] == 3 and r["molecules_with_conformers"] == 3
        assert r["conformers"] == 6 and r["wall_seconds"] > 0 and r["conformers_per_second"] > 0
        assert r["peak_rss_mib"] > 10
        q = r["quality"]
        assert q["n_molecules"] == 3 and q["n_failures"] == 0 and 0 <= q["median_min_rmsd"] < 3
        assert 0 <= q["frac_below_1"] <= 1
        assert [p["id"] for p in r["per_molecule"]] == list(SMILES)
        assert r["ratio_same_threads"] > 0 and r["ratio_vs_etkdg_defaults"] > 0
        if r["tool"] == "etkdg":
            assert r["ratio_same_threads"] == pytest.approx(1.0)
    for r in rows[:2]:  # PoseBusters on the rows at defaults, one conformer per molecule
        assert r["posebusters"]["n_conformers"] == 3 and 0 <= r["posebusters"]["pass_rate"] <= 1
    for r in rows[2:]:  # equal-thread rows: scored only when their SDF differs from the defaults'
        assert r["posebusters"] is None or r["identical_to"] == f"{r['tool']} defaults"
    assert rows[0]["command"].startswith("molgen conformers molecules.smi -n 2 -o ")
    assert "--threads 0" in rows[1]["command"] and "--threads 1" in rows[2]["command"]
    md = (out / "conformers.md").read_text()
    assert md.startswith("Command: `molgen bench conformers") and "git commit" in md
    assert md.count("| molgen |") == 2 and md.count("| etkdg |") == 2
    assert "PoseBusters pass" in md and "| bond_lengths |" in md
    assert (out / "conformers_rmsd.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob("**/*.sdf"))  # SDFs removed after scoring
    assert math.isfinite(report["wall_seconds"])


def test_moses_set_has_no_rmsd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SMILES-only set: rows without quality; only the rows at defaults (``--equal-threads`` with no
    value), one molecule, PoseBusters off, two repeats. A stand-in for the molgen command (ETKDG
    behind molgen's command line, crashing on its second run) keeps it fast; the real one runs in the
    test above."""
    from molgen.bench import endtoend

    fake = tmp_path / "fake_molgen.py"
    calls = tmp_path / "calls"
    fake.write_text(
        "import pathlib, sys\nfrom molgen.bench.etkdg_baseline import main\n"
        f"calls = pathlib.Path({str(calls)!r}); calls.write_text(calls.read_text() + 'x' if calls.exists() else 'x')\n"
        "if calls.read_text() == 'xx': print('Error: boom', file=sys.stderr); sys.exit(2)\n"
        "args = [a for a in sys.argv[1:] if a != 'conformers']\nsys.exit(main(args))\n"
    )
    monkeypatch.setattr(endtoend, "_molgen_prefix", lambda: [sys.executable, str(fake)])
    smi = tmp_path / "tiny.smi"
    smi.write_text("CCO ethanol\n")
    out = tmp_path / "m"
    bench.main(["--set", "moses", "--smiles-file", str(smi), "--ns", "1", "--equal-threads", "--repeats", "2",
                "--posebusters-sample", "0", "--no-warmup", "--no-progress", "--out", str(out)])  # fmt: skip
    data = json.loads((out / "conformers.json").read_text())
    assert data["selection"]["set"] == "moses" and data["selection"]["n_selected"] == 1
    rows = data["endtoend"]["rows"]
    assert [r["tool"] for r in rows] == ["molgen", "etkdg"]
    assert all(r["quality"] is None and r["posebusters"] is None and r["conformers"] == 1 for r in rows)
    assert not (out / "conformers_rmsd.png").exists()
    molgen, etkdg = rows
    assert [f["repeat"] for f in molgen["failed_runs"]] == [1] and molgen["failed_runs"][0]["exit_code"] == 2
    assert molgen["failed_runs"][0]["last_line"] == "Error: boom"
    assert len(molgen["wall_seconds_all"]) == 1 and len(etkdg["wall_seconds_all"]) == 2
    md = (out / "conformers.md").read_text()
    assert "MOSES" in md and "molgen defaults N=1 repeat 1 (exit 2: Error: boom)" in md


def test_inprocess_requires_ccd() -> None:
    with pytest.raises(SystemExit):
        bench.main(["--mode", "inprocess", "--set", "moses"])


def test_cli_forwards_to_main(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "molgen.bench.conformers", "--help"],
                          check=False, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and "--posebusters-sample" in done.stdout and "--mode" in done.stdout


def test_run_measured_samples_the_whole_process_tree() -> None:
    """A parent holding 60 MiB with a child holding 60 MiB: rusage sees the largest process, the
    sampled tree peak both."""
    pytest.importorskip("psutil")
    from molgen.bench.memory import run_measured

    hold = "x = bytearray(60 * 2**20); x[::4096] = b'1' * len(x[::4096]); import time; time.sleep(1.2)"
    code = f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', {hold!r}]); {hold}; p.wait()"
    usage = run_measured([sys.executable, "-c", code], timeout=60, sample_interval=0.1)
    assert usage["exit_code"] == 0 and not usage["timed_out"]
    assert 60 * 1024 <= usage["maxrss_kib"] < 110 * 1024
    assert usage["tree_rss_peak_kib"] >= 120 * 1024
