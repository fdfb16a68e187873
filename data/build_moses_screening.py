"""Build ``data/moses_screening_300.smi``: 300 drug-like MOSES test-set SMILES for ``notebooks/screening.ipynb``.

    python data/build_moses_screening.py            # pip-downloads the molsets wheel to /tmp/molsets once
    python data/build_moses_screening.py --wheel /tmp/molsets/molsets-0.3.1-py3-none-any.whl

Steps (rerunnable, deterministic for a given wheel):

1. ``pip download --no-deps molsets==0.3.1 -d /tmp/molsets`` (unless ``--wheel`` is given or the wheel
   is already there);
2. read ``moses/dataset/data/test.csv.gz`` from inside the wheel (zipfile; 176,074 SMILES, column
   ``SMILES``);
3. shuffle the row numbers with ``random.Random(20250306).shuffle`` (seed ``--seed``) and walk them in
   that order, dropping every SMILES that RDKit cannot parse and every molecule whose InChIKey first
   block (first 14 characters of ``Chem.MolToInchiKey``) is in the project's held-out list
   (:func:`molgen.datasets.split.is_heldout`, i.e. ``molgen/datasets/heldout_inchikey_blocks.txt``, a
   copy of ``/work/shared/data/heldout/heldout_inchikey_blocks.txt``), until 300 molecules are kept;
4. write them sorted by row as ``SMILES moses_screen_NNNNNN`` lines, ``NNNNNN`` being the 0-based row
   of the molecule in ``test.csv.gz``. The SMILES are MOSES's own strings, unchanged.

Counts of each step are printed to stderr. ``tests/datasets/test_shipped_data.py`` checks the file.

MOSES: Polykovskiy et al., "Molecular Sets (MOSES): A Benchmarking Platform for Molecular Generation
Models", Front. Pharmacol. 11:565644 (2020), MIT licence; molecules from ZINC Clean Leads.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling build script of the benchmark set
from build_moses_test_1000 import MEMBER, fetch_wheel, read_test_smiles

SEED = 20250306
NUM = 300
OUT = Path(__file__).resolve().parent / "moses_screening_300.smi"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wheel", type=Path, default=None, help="molsets wheel (default: pip download it)")
    p.add_argument("--download-dir", type=Path, default=Path("/tmp/molsets"))
    p.add_argument("--num", type=int, default=NUM)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)

    from rdkit import Chem, RDLogger

    from molgen.datasets.split import heldout_blocks, inchikey_block, is_heldout

    RDLogger.DisableLog("rdApp.*")
    wheel = args.wheel or fetch_wheel(args.download_dir)
    smiles, digest = read_test_smiles(wheel)
    print(f"{wheel.name}: {MEMBER} sha256 {digest}, {len(smiles)} SMILES; "
          f"{len(heldout_blocks())} held-out InChIKey blocks", file=sys.stderr)  # fmt: skip
    order = list(range(len(smiles)))
    random.Random(args.seed).shuffle(order)
    kept: list[int] = []
    n_seen = n_bad = n_heldout = 0
    for row in order:
        if len(kept) == args.num:
            break
        n_seen += 1
        mol = Chem.MolFromSmiles(smiles[row])
        key = Chem.MolToInchiKey(mol) if mol is not None else ""
        if not key:
            n_bad += 1
            continue
        if is_heldout(inchikey_block(key)):
            n_heldout += 1
            continue
        kept.append(row)
    if len(kept) < args.num:
        raise SystemExit(f"only {len(kept)} eligible molecules, {args.num} requested")
    kept.sort()
    args.out.write_text("".join(f"{smiles[row]} moses_screen_{row:06d}\n" for row in kept))
    print(f"drew {n_seen} rows (seed {args.seed}): unparsable {n_bad}, held out {n_heldout}; "
          f"wrote {len(kept)} to {args.out}", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
