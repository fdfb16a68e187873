"""Build ``data/moses_test_1000.smi``: 1,000 MOSES test-set SMILES for the speed / PoseBusters benchmark.

    python data/build_moses_test_1000.py            # downloads the molsets wheel to /tmp/molsets
    python data/build_moses_test_1000.py --wheel /tmp/molsets/molsets-0.3.1-py3-none-any.whl

Steps (rerunnable, deterministic for a given wheel):

1. ``pip download --no-deps molsets==0.3.1 -d /tmp/molsets`` (unless ``--wheel`` is given);
2. read ``moses/dataset/data/test.csv.gz`` from inside the wheel (176,074 SMILES, column ``SMILES``);
3. drop every SMILES that RDKit cannot parse, and every molecule whose InChIKey first block is in
   ``molgen/datasets/heldout_inchikey_blocks.txt`` (:func:`molgen.datasets.split.is_heldout`);
4. draw ``random.Random(0).sample`` of 1,000 of the remaining rows (in file order) and write them, in
   file order, as ``SMILES moses_test_NNNNNN`` lines, ``NNNNNN`` being the 0-based row of the molecule
   in ``test.csv.gz``. The SMILES are MOSES's own strings, unchanged.

The counts of each step are printed (and are in the docstring of the test that checks the file).
MOSES: Polykovskiy et al., Front. Pharmacol. 11:565644 (2020), MIT licence; molecules from ZINC Clean Leads.
"""

from __future__ import annotations

import argparse
import csv
import glob
import gzip
import hashlib
import io
import random
import subprocess
import sys
import zipfile
from pathlib import Path

MOSES_VERSION = "0.3.1"
MEMBER = "moses/dataset/data/test.csv.gz"
OUT = Path(__file__).resolve().parent / "moses_test_1000.smi"


def fetch_wheel(dest: Path) -> Path:
    """``pip download`` the molsets wheel into ``dest`` (once) and return its path."""
    found = sorted(glob.glob(str(dest / f"molsets-{MOSES_VERSION}-*.whl")))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", f"molsets=={MOSES_VERSION}", "-d", str(dest)],
            check=True,
        )
        found = sorted(glob.glob(str(dest / f"molsets-{MOSES_VERSION}-*.whl")))
    if not found:
        raise SystemExit(f"no molsets {MOSES_VERSION} wheel in {dest}")
    return Path(found[0])


def read_test_smiles(wheel: Path) -> tuple[list[str], str]:
    """The ``SMILES`` column of MOSES's ``test.csv.gz`` (file order) and the member's sha256."""
    raw = zipfile.ZipFile(wheel).read(MEMBER)
    text = gzip.decompress(raw).decode()
    rows = [row["SMILES"].strip() for row in csv.DictReader(io.StringIO(text))]
    return rows, hashlib.sha256(raw).hexdigest()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wheel", type=Path, default=None, help="molsets wheel (default: pip download it)")
    p.add_argument("--download-dir", type=Path, default=Path("/tmp/molsets"))
    p.add_argument("--num", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)

    from rdkit import Chem, RDLogger

    from molgen.datasets.split import heldout_blocks, inchikey_block, is_heldout

    RDLogger.DisableLog("rdApp.*")
    wheel = args.wheel or fetch_wheel(args.download_dir)
    smiles, digest = read_test_smiles(wheel)
    print(f"{wheel.name}: {MEMBER} sha256 {digest}, {len(smiles)} SMILES; "
          f"{len(heldout_blocks())} held-out InChIKey blocks", file=sys.stderr)  # fmt: skip
    kept: list[int] = []
    n_bad = n_heldout = 0
    for row, smi in enumerate(smiles):
        mol = Chem.MolFromSmiles(smi)
        key = Chem.MolToInchiKey(mol) if mol is not None else ""
        if not key:
            n_bad += 1
            continue
        if is_heldout(inchikey_block(key)):
            n_heldout += 1
            continue
        kept.append(row)
    chosen = sorted(random.Random(args.seed).sample(kept, args.num))
    args.out.write_text("".join(f"{smiles[row]} moses_test_{row:06d}\n" for row in chosen))
    print(f"unparsable {n_bad}, held out {n_heldout}, eligible {len(kept)}; wrote {len(chosen)} "
          f"(seed {args.seed}) to {args.out}", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
