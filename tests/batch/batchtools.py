"""Helpers of the batch tests (``molgen conformers INPUT -o FOLDER/``, ``molgen merge``)."""

from __future__ import annotations

import csv
import gzip
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from rdkit import Chem
from typer.testing import CliRunner

from molgen.cli import app

REPO = Path(__file__).resolve().parents[2]

#: small molecules that the shipped model handles with ``-n 2 --steps 2`` (chains with end groups)
_ENDS = ("O", "N", "C(=O)O", "Cl", "c1ccccc1")
SMALL = [("C" * k + end, f"m{k:02d}{i}") for k in range(3, 12) for i, end in enumerate(_ENDS)]


def write_smi(path: Path, molecules: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{smiles} {name}\n" for smiles, name in molecules))
    return path


def cli(*args: Any) -> Any:
    """``molgen ARGS`` in this process (stdout and stderr apart)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a ``molgen`` subprocess: the shipped model, this checkout first on the path,
    one torch thread."""
    env = {k: v for k, v in os.environ.items() if k != "MOLGEN_MODEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


MOLGEN = [sys.executable, "-m", "molgen.cli"]


def shard_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("shard-"))


def manifest(shard: Path) -> list[dict[str, Any]]:
    """The parsed lines of a shard's manifest (none when it does not exist)."""
    path = shard / "manifest.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def chunk_files(shard: Path) -> list[Path]:
    """The chunk files of a shard (temporary ``.part`` files are hidden and not chunks)."""
    return sorted(p for p in shard.iterdir() if p.name.startswith("chunk-"))


def read_sdf(path: Path) -> list[Chem.Mol]:
    """Every record of an SDF (``.sdf`` or ``.sdf.gz``); a record RDKit cannot read fails the test."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:  # type: ignore[operator]
        mols = list(Chem.ForwardSDMolSupplier(fh, removeHs=False))
    assert all(m is not None for m in mols), f"{path} holds an unreadable record"
    return mols


def conformers_by_name(path: Path) -> dict[str, list[np.ndarray]]:
    """``{molecule name: [coordinates of each conformer, in file order]}`` of an SDF."""
    out: dict[str, list[np.ndarray]] = {}
    for mol in read_sdf(path):
        out.setdefault(mol.GetProp("_Name"), []).append(mol.GetConformer().GetPositions())
    return out


def merged_names(path: Path) -> list[str]:
    """The molecule of every record of a merged SDF (one molecule's conformers are consecutive records)."""
    names: list[str] = []
    for mol in read_sdf(path):
        name = mol.GetProp("_Name")
        if not names or names[-1] != name:
            names.append(name)
    return names


def failures(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
