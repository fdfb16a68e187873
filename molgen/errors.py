"""Exception hierarchy of molgen.

Every error molgen raises on purpose derives from :class:`MolgenError`, so callers (the
CLI, batch scripts) can tell "molgen refused this" from a bug:

* :class:`InputError` -- the *input* is wrong (a missing file, an unparsable SMILES, a
  missing CSV column, a bad option value). It is also a :class:`ValueError`. The message
  names the input and says what is wrong with it.
* :class:`MoleculeError` -- the input is well formed but this *molecule* cannot be
  processed (it cannot be embedded, MMFF94 has no parameters for it, no conformer passed
  validation, ...).
"""

from __future__ import annotations

__all__ = ["InputError", "MoleculeError", "MolgenError"]


class MolgenError(Exception):
    """Base class of all errors raised deliberately by molgen."""


class InputError(MolgenError, ValueError):
    """Bad user input; the message names the input and what is wrong with it."""


class MoleculeError(MolgenError):
    """A (valid) molecule that molgen cannot process, e.g. one that cannot be embedded."""
