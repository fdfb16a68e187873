"""Molecule files shipped in data/: they parse, and none of their molecules is held out.

``data/moses_screening_300.smi`` (built by ``data/build_moses_screening.py``): 300 MOSES test-set
molecules for ``notebooks/screening.ipynb``.
"""

import glob
import importlib.util
import re
from pathlib import Path

import pytest
from rdkit import Chem, RDLogger

from molgen.datasets import split

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
SCREENING = DATA / "moses_screening_300.smi"
SHARED_HELDOUT = ROOT.parent / "shared" / "data" / "heldout" / "heldout_inchikey_blocks.txt"


def _heldout_blocks() -> frozenset[str]:
    """The package's held-out list, plus the project's reference copy when the checkout sits beside it."""
    blocks = set(split.heldout_blocks())
    if SHARED_HELDOUT.exists():
        blocks |= set(SHARED_HELDOUT.read_text().split())
    assert len(blocks) > 5000
    return frozenset(blocks)


def _records(path: Path) -> list[tuple[str, str]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for line in lines:
        fields = line.split()
        assert len(fields) == 2, f"{path.name}: expected 'SMILES ID', got {line!r}"
        records.append((fields[0], fields[1]))
    return records


def test_screening_file_parses():
    records = _records(SCREENING)
    assert len(records) == 300
    names = [name for _, name in records]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"moses_screen_\d{6}", name) for name in names)
    assert names == sorted(names)  # file order of the MOSES test set
    RDLogger.DisableLog("rdApp.*")
    for smiles, name in records:
        assert Chem.MolFromSmiles(smiles) is not None, f"{name}: RDKit cannot parse {smiles!r}"


def test_screening_file_has_no_heldout_molecule():
    heldout = _heldout_blocks()
    RDLogger.DisableLog("rdApp.*")
    for smiles, name in _records(SCREENING):
        key = Chem.MolToInchiKey(Chem.MolFromSmiles(smiles))
        assert key[:14] not in heldout, f"{name} ({smiles}) is a held-out molecule"


def test_screening_file_is_reproducible(tmp_path):
    """The build script regenerates the shipped file byte for byte (when the MOSES wheel is at hand)."""
    wheels = sorted(glob.glob("/tmp/molsets/molsets-0.3.1-*.whl"))
    if not wheels:
        pytest.skip("no molsets wheel in /tmp/molsets (pip download --no-deps molsets==0.3.1 -d /tmp/molsets)")
    spec = importlib.util.spec_from_file_location("build_moses_screening", DATA / "build_moses_screening.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    out = tmp_path / "screening.smi"
    build.main(["--wheel", wheels[0], "--out", str(out)])
    assert out.read_bytes() == SCREENING.read_bytes()
