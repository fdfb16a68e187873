"""One-hot encodings of atom types and formal charges, the variables of de novo diffusion.

A molecule's atoms are encoded as ``[one-hot element | one-hot formal charge]`` rows (``(N, E + C)``),
as EDM diffuses one-hot atom types (Hoogeboom et al. 2022; here formal charges are a second categorical
variable instead of EDM's integer nuclear charge). Decoding takes the argmax of each block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["QM9_ENCODING", "AtomEncoding"]


@dataclass(frozen=True)
class AtomEncoding:
    """The element and formal-charge vocabularies of a model.

    Attributes:
        elements: atomic numbers, in one-hot order.
        charges: formal charges, in one-hot order.
    """

    elements: tuple[int, ...]
    charges: tuple[int, ...] = (-1, 0, 1)

    @property
    def dim(self) -> int:
        """Width of an encoded row: ``len(elements) + len(charges)``."""
        return len(self.elements) + len(self.charges)

    def encode(self, atomic_numbers: np.ndarray, formal_charges: np.ndarray | None = None) -> np.ndarray:
        """``(N, dim)`` float32 one-hot rows.

        Raises:
            ValueError: an element or charge outside the vocabulary (named in the message).
        """
        z = np.asarray(atomic_numbers, dtype=np.int64).reshape(-1)
        q = np.zeros_like(z) if formal_charges is None else np.asarray(formal_charges, dtype=np.int64).reshape(-1)
        el_index = {e: i for i, e in enumerate(self.elements)}
        ch_index = {c: i for i, c in enumerate(self.charges)}
        bad_z = sorted({int(v) for v in z if int(v) not in el_index})
        if bad_z:
            raise ValueError(f"atomic numbers {bad_z} are not in this model's elements {list(self.elements)}")
        bad_q = sorted({int(v) for v in q if int(v) not in ch_index})
        if bad_q:
            raise ValueError(f"formal charges {bad_q} are not in this model's charges {list(self.charges)}")
        out = np.zeros((len(z), self.dim), dtype=np.float32)
        out[np.arange(len(z)), [el_index[int(v)] for v in z]] = 1.0
        out[np.arange(len(z)), [len(self.elements) + ch_index[int(v)] for v in q]] = 1.0
        return out

    def decode(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(atomic_numbers (N,), formal_charges (N,))`` from ``(N, dim)`` rows by argmax per block."""
        f = np.asarray(features).reshape(-1, self.dim)
        n_el = len(self.elements)
        z = np.asarray(self.elements, dtype=np.int64)[f[:, :n_el].argmax(1)]
        q = np.asarray(self.charges, dtype=np.int64)[f[:, n_el:].argmax(1)]
        return z, q

    def to_dict(self) -> dict:
        return {"elements": list(self.elements), "charges": list(self.charges)}

    @classmethod
    def from_dict(cls, d: dict) -> AtomEncoding:
        return cls(tuple(int(e) for e in d["elements"]), tuple(int(c) for c in d["charges"]))


#: QM9's elements H, C, N, O, F with charges -1, 0, +1
QM9_ENCODING = AtomEncoding((1, 6, 7, 8, 9))
