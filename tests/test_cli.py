"""The `molgen` command line (in-process with the fake sampler, plus import-cost checks)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from molgen import __version__
from molgen.chem.io import read_conformers_sdf
from molgen.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _failures(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_version() -> None:
    result = _run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"molgen {__version__}"


@pytest.mark.parametrize(
    "args", [["--help"], ["conformers", "--help"], ["train", "--help"], ["bench", "--help"]]
)
def test_help(args: list[str]) -> None:
    result = _run(*args)
    assert result.exit_code == 0, result.output
    assert "Usage" in result.stdout


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; from molgen import cli; "
        "heavy = [m for m in ('rdkit', 'torch', 'numpy', 'molgen.api') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_mixed_batch_reports_failures(fake_sampler, tmp_path: Path) -> None:
    fake_sampler.fail_names.add("unembeddable")
    smi = tmp_path / "ligands.smi"
    smi.write_text(
        "CCO ethanol\n"
        "C1CC( broken\n"
        "CC(=O)Nc1ccc(O)cc1 paracetamol\n"
        "c1cccc1 kekule\n"
        "CCN unembeddable\n"
    )
    out = tmp_path / "confs.sdf"
    result = _run("conformers", smi, "-n", "3", "-o", out)
    assert result.exit_code == 1, result.output
    assert "FAILED ligands.smi:2 (broken)" in result.stderr
    assert "FAILED ligands.smi:4 (kekule)" in result.stderr
    assert "FAILED ligands.smi:5 (unembeddable)" in result.stderr
    assert "2 ok, 3 failed" in result.stderr
    mols = read_conformers_sdf(out)
    assert [m.GetProp("_Name") for m in mols] == ["ethanol", "paracetamol"]
    assert [m.GetNumConformers() for m in mols] == [3, 3]
    rows = _failures(tmp_path / "confs.failed.csv")
    assert [r["source"] for r in rows] == ["ligands.smi:2", "ligands.smi:4", "ligands.smi:5"]
    assert [r["name"] for r in rows] == ["broken", "kekule", "unembeddable"]
    assert rows[0]["smiles_or_record"] == "C1CC("
    assert "syntax error" in rows[0]["reason"] and "kekulize" in rows[1]["reason"]
    assert "cannot embed" in rows[2]["reason"]
    assert not list(tmp_path.glob("*.part"))


def test_all_valid_exit_zero_and_json(fake_sampler, tmp_path: Path) -> None:
    smi = tmp_path / "ok.smi"
    smi.write_text("CCO a\nCCN b\n")
    out = tmp_path / "ok.xyz"
    result = _run("conformers", smi, "-n", "2", "-o", out, "--json", "--seed", "7", "--threads", "1")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["molecules_ok"] == 2 and summary["molecules_failed"] == 0
    assert summary["conformers_written"] == 4 and summary["failed_file"] is None
    assert not (tmp_path / "ok.failed.csv").exists()
    assert out.read_text().count("conf_id=") == 4
    # each molecule's seed derives from the global seed and its ID (not from its position or shard)
    from molgen.batch.sharding import molecule_seed

    assert {c["seed"] for c in fake_sampler.calls} == {molecule_seed(7, "a"), molecule_seed(7, "b")}


def test_single_smiles_with_options(fake_sampler, tmp_path: Path) -> None:
    out = tmp_path / "ibu.sdf"
    result = _run(
        "-q",
        "conformers",
        "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O",
        "-n",
        "6",
        "-o",
        out,
        "--optimize",
        "mmff",
        "--energy-window",
        "5",
        "--rms",
        "0.3",
        "--sampler",
        "sde",
        "--steps",
        "5",
        "--threads",
        "1",
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # -q
    (mol,) = read_conformers_sdf(out)
    conf = mol.GetConformer(0)
    assert conf.GetProp("sampler") == "sde" and conf.GetIntProp("steps") == 5
    assert conf.HasProp("energy") and conf.HasProp("delta_energy")


def test_csv_columns_and_custom_failed_path(fake_sampler, tmp_path: Path) -> None:
    table = tmp_path / "lib.csv"
    table.write_text("id,structure\nm1,CCO\nm2,XX\n")
    out = tmp_path / "lib.pdb"
    failed = tmp_path / "bad.csv"
    result = _run(
        "conformers",
        table,
        "-o",
        out,
        "-n",
        "2",
        "--smiles-col",
        "structure",
        "--id-col",
        "id",
        "--failed",
        failed,
    )
    assert result.exit_code == 1, result.output
    assert [r["name"] for r in _failures(failed)] == ["m2"]
    assert out.read_text().count("MODEL") == 2


def test_missing_input_file(fake_sampler, tmp_path: Path) -> None:
    result = _run("conformers", tmp_path / "nope.smi", "-o", tmp_path / "out.sdf")
    assert result.exit_code == 2
    assert "file not found" in result.stderr
    assert not (tmp_path / "out.sdf").exists()


def test_empty_input_file(fake_sampler, tmp_path: Path) -> None:
    smi = tmp_path / "empty.smi"
    smi.write_text("\n# nothing here\n")
    result = _run("conformers", smi, "-o", tmp_path / "out.sdf")
    assert result.exit_code == 2
    assert "contains no molecules" in result.stderr


def test_unwritable_output(fake_sampler, tmp_path: Path) -> None:
    result = _run("conformers", "CCO", "-o", tmp_path / "no_such_dir" / "out.sdf")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    result = _run("conformers", "CCO", "-o", tmp_path / "out.mol2")
    assert result.exit_code == 2
    assert "unsupported" in result.stderr


def test_missing_csv_column(fake_sampler, tmp_path: Path) -> None:
    table = tmp_path / "lib.csv"
    table.write_text("id,structure\nm1,CCO\n")
    result = _run("conformers", table, "-o", tmp_path / "out.sdf")
    assert result.exit_code == 2
    assert "no column 'smiles'" in result.stderr and "'structure'" in result.stderr


@pytest.mark.parametrize(
    "bad",
    [["-n", "0"], ["--sampler", "euler"], ["--optimize", "uff"], ["--rms", "-1"], ["--steps", "0"],
     ["--score-scale", "0"], ["--planar-bonds", "flat"], ["--per-structure", "0"]],
)
def test_bad_option_values(fake_sampler, tmp_path: Path, bad: list[str]) -> None:
    result = _run("conformers", "CCO", "-o", tmp_path / "out.sdf", *bad)
    assert result.exit_code == 2


def test_missing_output_option() -> None:
    result = _run("conformers", "CCO")
    assert result.exit_code == 2


def test_verbose_and_forced_progress(fake_sampler, tmp_path: Path) -> None:
    smi = tmp_path / "two.smi"
    smi.write_text("CCO a\nC1CC( b\n")
    out = tmp_path / "two.sdf"
    result = _run("-v", "conformers", smi, "-n", "2", "-o", out, "--progress")
    assert result.exit_code == 1, result.output
    assert "ok two.smi:1 (a): 2 conformers" in result.stderr
    assert "FAILED two.smi:2 (b)" in result.stderr
    assert "molecules: 1 ok, 1 failed" in result.stderr
