"""The held-out filter and the InChIKey-block split rule."""

import hashlib
import itertools
from collections import Counter
from pathlib import Path

import pytest
from rdkit import Chem

from molgen.datasets import split
from molgen.datasets.ccd import CCDLigand, load_ccd_ligands
from molgen.datasets.conformer_dataset import write_training_arrays

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "heldout" / "heldout_inchikey_blocks.txt"


def test_shipped_heldout_list_is_complete():
    blocks = split.heldout_blocks()
    assert len(blocks) > 5000
    assert all(len(b) == 14 for b in blocks)
    if SHARED.exists():  # the project's reference copy, when the checkout sits beside it
        assert blocks == frozenset(SHARED.read_text().split())


def test_split_rule_matches_definition():
    for block in ["RZVAJINKPMORJF", "BSYNRYMUTXBXSQ", "AAAAAAAAAAAAAA"]:
        h = int(hashlib.sha256(block.encode()).hexdigest(), 16) % 20
        assert split.split_of(block) == {0: "test", 1: "val"}.get(h, "train")
    counts = Counter(split.split_of(f"{i:014d}") for i in range(20000))
    assert abs(counts["test"] / 20000 - 0.05) < 0.01 and abs(counts["val"] / 20000 - 0.05) < 0.01


def test_ccd_loader_removes_heldout_molecules():
    seen = Counter()
    for rec in itertools.islice(load_ccd_ligands(), 1500):
        if isinstance(rec, CCDLigand):
            assert not split.is_heldout(rec.block)
            assert rec.block == Chem.MolToInchiKey(rec.mol).split("-")[0]
            assert rec.split == split.split_of(rec.block)
            seen["kept"] += 1
        else:
            seen[rec[1]] += 1
    assert seen["kept"] > 500
    assert seen["heldout"] > 0  # the filter really fires on CCD


def test_training_export_refuses_heldout(tmp_path):
    block = sorted(split.heldout_blocks())[0]
    record = {"block": block, "torsions": [[0, 1, 2, 3]], "rmsd_match": 0.1}
    with pytest.raises(RuntimeError, match="held-out"):
        write_training_arrays([record], tmp_path / "x.npz")
