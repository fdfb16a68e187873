"""Featurize an RDKit molecule into heavy-atom graph arrays for the torsion denoiser.

The denoiser sees heavy atoms only: hydrogens ride along with their heavy atom when torsions rotate
(their positions come from the local structure) and their count is a node feature. This halves the graph
of a drug-like molecule and keeps sampling fast on a CPU.

Everything here is NumPy; :mod:`molgen.models.graph` turns it into torch tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rdkit import Chem

from molgen.chem.feature_spec import BOND_FEATURE_DIM, ELEMENTS, NODE_FEATURE_DIM
from molgen.chem.torsions import rotatable_torsions

HYBRIDIZATIONS = [
    Chem.HybridizationType.SP,
    Chem.HybridizationType.SP2,
    Chem.HybridizationType.SP3,
    Chem.HybridizationType.SP3D,
    Chem.HybridizationType.SP3D2,
]
BOND_TYPES = [Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE, Chem.BondType.AROMATIC]

assert NODE_FEATURE_DIM == (len(ELEMENTS) + 1) + 7 + 5 + 5 + 5 + 1 + (len(HYBRIDIZATIONS) + 1) + 1 + 6
assert BOND_FEATURE_DIM == len(BOND_TYPES) + 2


def _one_hot(value: int, size: int) -> list[int]:
    out = [0] * size
    out[min(max(value, 0), size - 1)] = 1
    return out


def atom_features(atom: Chem.Atom) -> list[int]:
    """Categorical features of one heavy atom, one-hot encoded (length :data:`NODE_FEATURE_DIM`)."""
    symbol = atom.GetSymbol()
    element = ELEMENTS.index(symbol) if symbol in ELEMENTS else len(ELEMENTS)
    heavy_degree = sum(1 for n in atom.GetNeighbors() if n.GetAtomicNum() > 1)
    hyb = atom.GetHybridization()
    hyb_index = HYBRIDIZATIONS.index(hyb) if hyb in HYBRIDIZATIONS else len(HYBRIDIZATIONS)
    ring_sizes = [int(atom.IsInRingSize(k)) for k in (3, 4, 5, 6, 7, 8)]
    return (
        _one_hot(element, len(ELEMENTS) + 1)
        + _one_hot(heavy_degree, 7)
        + _one_hot(atom.GetTotalNumHs(), 5)
        + _one_hot(atom.GetFormalCharge() + 2, 5)
        + _one_hot(atom.GetTotalValence(), 5)  # valence 0..4+ (caps at 4)
        + [int(atom.GetIsAromatic())]
        + _one_hot(hyb_index, len(HYBRIDIZATIONS) + 1)
        + [int(atom.IsInRing())]
        + ring_sizes
    )


def bond_features(bond: Chem.Bond) -> list[int]:
    """Bond type one-hot, conjugation and ring membership (length :data:`BOND_FEATURE_DIM`)."""
    bt = bond.GetBondType()
    kind = BOND_TYPES.index(bt) if bt in BOND_TYPES else 0
    return _one_hot(kind, len(BOND_TYPES)) + [int(bond.GetIsConjugated()), int(bond.IsInRing())]


@dataclass
class MolGraph:
    """Heavy-atom graph of one molecule, indices local to the heavy atoms.

    Attributes:
        heavy_atoms: ``(N,)`` indices of the heavy atoms in the full (hydrogen-bearing) molecule.
        node_features: ``(N, NODE_FEATURE_DIM)`` uint8 one-hot features.
        bond_index: ``(2, 2B)`` int64 directed bond edges (both directions).
        bond_features: ``(2B, BOND_FEATURE_DIM)`` uint8.
        torsions: ``(T, 4)`` int64 heavy-atom indices ``(a, u, v, b)``.
        torsion_masks: ``(T, N)`` bool, heavy atoms that move with each torsion.
        full_torsions: ``(T, 4)`` the same torsions in full-molecule indices.
        full_torsion_masks: ``(T, n_atoms)`` moving atoms including hydrogens.
    """

    heavy_atoms: np.ndarray
    node_features: np.ndarray
    bond_index: np.ndarray
    bond_features: np.ndarray
    torsions: np.ndarray
    torsion_masks: np.ndarray
    full_torsions: np.ndarray
    full_torsion_masks: np.ndarray

    @property
    def num_nodes(self) -> int:
        return len(self.heavy_atoms)

    def item(self, pos: np.ndarray, topo: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The per-molecule arrays that :func:`molgen.models.graph.collate_graphs` takes.

        Args:
            pos: ``(N, 3)`` heavy-atom positions (Å).
            topo: ``(N, N)`` topological distances, computed by the collate step when None.
        """
        item = {
            "node_features": self.node_features,
            "bond_index": self.bond_index,
            "bond_features": self.bond_features,
            "torsions": self.torsions,
            "torsion_masks": self.torsion_masks,
            "pos": pos,
        }
        if topo is not None:
            item["topo"] = topo
        return item


def featurize(mol: Chem.Mol) -> MolGraph:
    """Build the heavy-atom :class:`MolGraph` of ``mol`` (with or without explicit hydrogens)."""
    heavy = np.array([a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1], dtype=np.int64)
    local = -np.ones(mol.GetNumAtoms(), dtype=np.int64)
    local[heavy] = np.arange(len(heavy))
    nodes = np.array([atom_features(mol.GetAtomWithIdx(int(i))) for i in heavy], dtype=np.uint8)
    src, dst, feats = [], [], []
    for bond in mol.GetBonds():
        i, j = local[bond.GetBeginAtomIdx()], local[bond.GetEndAtomIdx()]
        if i < 0 or j < 0:
            continue
        f = bond_features(bond)
        src += [i, j]
        dst += [j, i]
        feats += [f, f]
    full_torsions, full_masks = rotatable_torsions(mol)
    torsions = local[full_torsions] if len(full_torsions) else np.zeros((0, 4), dtype=np.int64)
    masks = full_masks[:, heavy] if len(full_torsions) else np.zeros((0, len(heavy)), dtype=bool)
    return MolGraph(
        heavy_atoms=heavy,
        node_features=nodes.reshape(len(heavy), NODE_FEATURE_DIM),
        bond_index=np.array([src, dst], dtype=np.int64).reshape(2, -1),
        bond_features=np.array(feats, dtype=np.uint8).reshape(-1, BOND_FEATURE_DIM),
        torsions=torsions.astype(np.int64),
        torsion_masks=masks,
        full_torsions=full_torsions,
        full_torsion_masks=full_masks,
    )


#: width of an all-atom node row: a hydrogen flag, then the heavy-atom features of :func:`atom_features`
ALL_ATOM_FEATURE_DIM = NODE_FEATURE_DIM + 1


def all_atom_graph(mol: Chem.Mol) -> dict[str, np.ndarray]:
    """Graph of every atom of ``mol`` (hydrogens included, in the molecule's atom order), for models that
    place all atoms in Cartesian space.

    Returns:
        ``node_features`` ``(N, ALL_ATOM_FEATURE_DIM)`` float32 (hydrogen flag + :func:`atom_features`),
        ``bond_index`` ``(2, 2B)`` int64 (both directions), ``bond_features`` ``(2B, BOND_FEATURE_DIM)``
        float32.
    """
    rows = [[int(a.GetAtomicNum() == 1), *atom_features(a)] for a in mol.GetAtoms()]
    src, dst, feats = [], [], []
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        f = bond_features(bond)
        src += [i, j]
        dst += [j, i]
        feats += [f, f]
    return {
        "node_features": np.asarray(rows, dtype=np.float32).reshape(-1, ALL_ATOM_FEATURE_DIM),
        "bond_index": np.array([src, dst], dtype=np.int64).reshape(2, -1),
        "bond_features": np.asarray(feats, dtype=np.float32).reshape(-1, BOND_FEATURE_DIM),
    }
