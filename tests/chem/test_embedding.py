"""ETKDG local structures: nonzero seeds, and RDKit's timeout answer ([-1]) falls back to random coordinates."""

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdDistGeom

from molgen.chem import embedding
from molgen.chem.embedding import embed_local_structures


def test_embeds_several_structures():
    mol = Chem.AddHs(Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1"))
    xyz = embed_local_structures(mol, 3, seed=11)
    assert xyz.shape == (3, mol.GetNumAtoms(), 3) and np.isfinite(xyz).all()
    with pytest.raises(ValueError, match="seed 0"):
        embed_local_structures(mol, 2, seed=0)


def test_timeout_answer_falls_back_to_random_coordinates(monkeypatch):
    calls = []
    real = rdDistGeom.EmbedMultipleConfs

    def fake(mol, numConfs, params):
        calls.append(params.useRandomCoords)
        if not params.useRandomCoords:
            return [-1]  # what RDKit returns when its timeout strikes
        return real(mol, numConfs=numConfs, params=params)

    monkeypatch.setattr(embedding.rdDistGeom, "EmbedMultipleConfs", fake)
    mol = Chem.AddHs(Chem.MolFromSmiles("CCOC(=O)C"))
    xyz = embed_local_structures(mol, 2, seed=5)
    assert calls == [False, True] and xyz.shape == (2, mol.GetNumAtoms(), 3)
