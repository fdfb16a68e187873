"""Widths of the graph feature vectors (pure Python, so that models and training need no RDKit).

Kept in step with :mod:`molgen.chem.featurize`, which asserts it at import time.
"""

#: element vocabulary of the one-hot element feature (anything else maps to one extra "other" slot)
ELEMENTS = ["C", "N", "O", "F", "P", "S", "Cl", "Br", "I", "B", "Si", "Se"]
#: element, heavy degree, H count, formal charge, valence, aromatic, hybridization, in ring, ring sizes 3-8
NODE_FEATURE_DIM = (len(ELEMENTS) + 1) + 7 + 5 + 5 + 5 + 1 + 6 + 1 + 6
#: bond type one-hot (single, double, triple, aromatic), conjugated, in ring
BOND_FEATURE_DIM = 4 + 2
