"""Dataset split rule and the held-out filter.

Split by the InChIKey first block (the 14-character connectivity hash), so that stereoisomers and
tautomer-free duplicates of one molecule land in the same split:
``int(sha256(block)) % 20 == 0`` -> test, ``== 1`` -> validation, otherwise training.

Molecules whose first block appears in ``heldout_inchikey_blocks.txt`` are reserved for an independent
evaluation and are removed from all three splits by every dataset builder (:func:`is_heldout`).
"""

from __future__ import annotations

import functools
import hashlib
import os
from importlib import resources
from pathlib import Path

SPLITS = ("train", "val", "test")


@functools.cache
def heldout_blocks(path: str | None = None) -> frozenset[str]:
    """The InChIKey first blocks reserved for independent evaluation.

    Read from ``path``, else from ``$MOLGEN_HELDOUT_FILE``, else from the copy shipped in the package.
    """
    path = path or os.environ.get("MOLGEN_HELDOUT_FILE")
    if path:
        text = Path(path).read_text()
    else:
        text = resources.files("molgen.datasets").joinpath("heldout_inchikey_blocks.txt").read_text()
    blocks = frozenset(line.strip() for line in text.splitlines() if line.strip())
    if not blocks:
        raise RuntimeError("the held-out InChIKey list is empty; refusing to build a dataset without it")
    return blocks


def inchikey_block(inchikey: str) -> str:
    """First block (14 characters) of a standard InChIKey such as ``RZVAJINKPMORJF-UHFFFAOYSA-N``."""
    block = inchikey.split("-")[0]
    if len(block) != 14:
        raise ValueError(f"not a standard InChIKey: {inchikey!r}")
    return block


def is_heldout(block: str) -> bool:
    """True if the molecule must never be used for training, validation, tuning or selection."""
    return block in heldout_blocks()


def split_of(block: str) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for an InChIKey first block (sha256 modulo 20 rule)."""
    h = int(hashlib.sha256(block.encode("ascii")).hexdigest(), 16) % 20
    if h == 0:
        return "test"
    if h == 1:
        return "val"
    return "train"
