"""ETKDG baseline as an RDKit user runs it: SMILES file in, multi-conformer SDF out.

    python -m molgen.bench.etkdg_baseline FILE.smi -n 10 -o etkdg.sdf --threads 0

Per line ``SMILES ID`` (blank and ``#`` lines skipped): ``Chem.MolFromSmiles``, ``Chem.AddHs``,
``rdDistGeom.ETKDGv3()`` with a nonzero ``randomSeed`` and ``numThreads`` from ``--threads``
(0 = all cores), ``EmbedMultipleConfs(mol, N, params)``, and every conformer written to the SDF
with the ID as title (conformers of one molecule contiguous). Nothing else: no minimisation, no
pruning. Unparsable SMILES and molecules without any conformer are reported on stderr and counted.
Exit code 0 when every molecule got at least one conformer, 1 otherwise. Imports only RDKit (no
torch), so start-up is what an RDKit user pays.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["embed_file", "main"]


def embed_file(
    smi: str | Path, out: str | Path, n: int, *, threads: int = 0, seed: int = 42
) -> dict[str, Any]:
    """Embed ``n`` ETKDGv3 conformers per molecule of ``smi`` and write them to the SDF ``out``.

    Args:
        smi: ``SMILES ID`` per line (ID optional: ``line<N>``).
        out: output SDF.
        n: conformers requested per molecule.
        threads: RDKit ``numThreads`` (0: all cores).
        seed: ``randomSeed`` (0 is replaced by 1: RDKit returns identical conformers with 0).

    Returns:
        ``{"molecules", "molecules_ok", "molecules_failed", "conformers_written", "wall_time_s"}``.
    """
    from rdkit import Chem, rdBase
    from rdkit.Chem import rdDistGeom

    started = time.perf_counter()
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = int(seed) % 2_147_483_647 or 1
    params.numThreads = int(threads)
    n_mol = n_ok = n_confs = 0
    blocker = rdBase.BlockLogs()
    tmp = Path(str(out) + ".part")
    writer = Chem.SDWriter(str(tmp))
    try:
        for k, line in enumerate(Path(smi).read_text().splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(maxsplit=1)
            name = parts[1].strip() if len(parts) > 1 else f"line{k}"
            n_mol += 1
            mol = Chem.MolFromSmiles(parts[0])
            if mol is None:
                print(f"FAILED line {k} ({name}): RDKit cannot parse the SMILES", file=sys.stderr)
                continue
            mol = Chem.AddHs(mol)
            ids = list(rdDistGeom.EmbedMultipleConfs(mol, int(n), params))
            if not ids:
                print(f"FAILED line {k} ({name}): no conformer embedded", file=sys.stderr)
                continue
            mol.SetProp("_Name", name)
            for cid in ids:
                writer.write(mol, confId=int(cid))
            n_ok += 1
            n_confs += len(ids)
    finally:
        writer.close()
        del blocker
    tmp.replace(out)
    return {
        "molecules": n_mol,
        "molecules_ok": n_ok,
        "molecules_failed": n_mol - n_ok,
        "conformers_written": n_confs,
        "wall_time_s": round(time.perf_counter() - started, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit code (0 all molecules embedded, 1 some failed)."""
    p = argparse.ArgumentParser(prog="python -m molgen.bench.etkdg_baseline", description=__doc__.splitlines()[0])
    p.add_argument("input", help="SMILES file: SMILES then ID per line")
    p.add_argument("-n", "--num-confs", type=int, default=10, help="conformers per molecule (10)")
    p.add_argument("-o", "--output", required=True, help="output SDF")
    p.add_argument("--threads", type=int, default=0, help="RDKit numThreads (0: all cores)")
    p.add_argument("--seed", type=int, default=42, help="randomSeed (42; 0 is replaced by 1)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    args = p.parse_args(argv)
    summary = embed_file(args.input, args.output, args.num_confs, threads=args.threads, seed=args.seed)
    if args.json:
        print(json.dumps(summary))
    return 0 if summary["molecules_failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
