"""Build (and cache) the CCD conformer dataset used to train the default torsion model.

    python -m molgen.datasets.build_ccd [--cache DIR] [--workers 2] [--seeds 4]

Steps: parse the CCD (:mod:`molgen.datasets.ccd`), drop held-out molecules, split by InChIKey block,
conformer-match every training and validation ligand (:mod:`molgen.datasets.conformer_matching`) in
worker processes, write resumable shards, then one consolidated file ``ccd_conformers.pkl`` with its
sha256 (the data hash stored in checkpoints). Test-split ligands keep only their experimental structure
(the benchmark's reference). Measured: ~0.17 s per ligand per core with 4 seeds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import sys
import time
from collections import Counter
from multiprocessing import get_context
from pathlib import Path

from rdkit import Chem

from molgen.atomic import open_atomic

DATASET_VERSION = 1
DEFAULT_CACHE = Path(os.environ.get("MOLGEN_CACHE", Path.home() / ".cache" / "molgen"))


def dataset_dir(cache: Path | None = None) -> Path:
    """Folder of the CCD conformer dataset inside the molgen cache (``$MOLGEN_CACHE``)."""
    return Path(cache or DEFAULT_CACHE) / f"ccd_v{DATASET_VERSION}"


def matched_record(mol: Chem.Mol, *, ccd_id: str, block: str, split: str, num_seeds: int, seed: int) -> dict:
    """Conformer-match one experimental heavy-atom ``mol`` and return its training record (NumPy arrays)."""
    from molgen.datasets.conformer_matching import match_conformer

    m = match_conformer(mol, num_seeds=num_seeds, seed=seed)
    g = m.graph
    return {
        "ccd_id": ccd_id,
        "block": block,
        "split": split,
        "smiles": Chem.MolToSmiles(mol),
        "node_features": g.node_features,
        "bond_index": g.bond_index.astype("int32"),
        "bond_features": g.bond_features,
        "torsions": g.torsions.astype("int32"),
        "torsion_masks": g.torsion_masks,
        "coords": m.coords.astype("float32"),
        "coords_exp": mol.GetConformer().GetPositions().astype("float32"),
        "rmsd_match": m.rmsd,
        "rmsd_copied": m.rmsd_copied,
    }


def _match_chunk(args: tuple[list[dict], int]) -> tuple[list[dict], Counter]:
    """Worker: conformer-match a chunk of ligands; returns records and failure counts."""
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    items, num_seeds = args
    out, failures = [], Counter()
    for item in items:
        try:
            out.append(
                matched_record(Chem.Mol(item["mol_binary"]), ccd_id=item["ccd_id"], block=item["block"],
                               split=item["split"], num_seeds=num_seeds, seed=1 + int(item["block_hash"]) % 1_000_003)
            )
        except Exception as exc:  # noqa: BLE001 - reported and counted
            failures[f"match: {str(exc)[:60]}"] += 1
    return out, failures


def build_ccd_dataset(
    cache: Path | None = None, *, workers: int = 2, num_seeds: int = 4, chunk_size: int = 400, limit: int | None = None
) -> Path:
    """Build the dataset into ``dataset_dir(cache)``, resuming from finished shards.

    Returns:
        Path of the consolidated ``ccd_conformers.pkl`` (train/val records + test references).
    """
    from tqdm import tqdm

    from molgen.datasets.ccd import CCDLigand, load_ccd_ligands

    out_dir = dataset_dir(cache)
    shard_dir = out_dir / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / "ccd_conformers.pkl"
    if final.exists():
        return final

    t0 = time.time()
    rejected: Counter = Counter()
    to_match, test_refs = [], []
    for rec in load_ccd_ligands():
        if not isinstance(rec, CCDLigand):
            rejected[rec[1].split(":")[0]] += 1
            continue
        smiles = Chem.MolToSmiles(rec.mol)
        if rec.split == "test":
            test_refs.append(
                {"ccd_id": rec.ccd_id, "block": rec.block, "pdb": rec.pdb_entry, "smiles": smiles,
                 "molblock": Chem.MolToMolBlock(rec.mol)}
            )
        else:
            to_match.append(
                {"ccd_id": rec.ccd_id, "block": rec.block, "split": rec.split, "smiles": smiles,
                 "mol_binary": rec.mol.ToBinary(), "block_hash": int(hashlib.sha256(rec.block.encode()).hexdigest()[:8], 16)}
            )
        if limit and len(to_match) >= limit:
            break
    print(f"parsed CCD in {time.time() - t0:.0f} s: {len(to_match)} train/val, {len(test_refs)} test; "
          f"rejected {dict(rejected)}", file=sys.stderr, flush=True)

    chunks = [to_match[i : i + chunk_size] for i in range(0, len(to_match), chunk_size)]
    todo = [(k, c) for k, c in enumerate(chunks) if not (shard_dir / f"shard_{k:04d}.pkl").exists()]
    failures: Counter = Counter()
    with get_context("spawn").Pool(workers) as pool, tqdm(total=len(to_match), initial=(len(chunks) - len(todo)) * chunk_size,
                                                           desc="conformer matching", unit="mol", mininterval=10) as bar:
        jobs = [(k, pool.apply_async(_match_chunk, ((c, num_seeds),))) for k, c in todo]
        for k, job in jobs:
            records, fails = job.get()
            failures.update(fails)
            with open_atomic(shard_dir / f"shard_{k:04d}.pkl", binary=True) as fh:
                pickle.dump({"records": records, "failures": fails}, fh)
            bar.update(len(chunks[k]))

    records: list[dict] = []
    failures = Counter()
    for k in range(len(chunks)):
        with open(shard_dir / f"shard_{k:04d}.pkl", "rb") as fh:
            shard = pickle.load(fh)
        records += shard["records"]
        failures.update(shard["failures"])
    payload = {
        "version": DATASET_VERSION,
        "num_seeds": num_seeds,
        "records": records,
        "test_refs": test_refs,
        "rejected": dict(rejected),
        "match_failures": dict(failures),
    }
    with open_atomic(final, binary=True) as fh:
        pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
    digest = hashlib.sha256(final.read_bytes()).hexdigest()
    counts = Counter(r["split"] for r in records)
    summary = {"sha256": digest, "counts": dict(counts), "test": len(test_refs), "rejected": dict(rejected),
               "match_failures": sum(failures.values()), "wall_s": round(time.time() - t0, 1)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary), file=sys.stderr)
    return final


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    print(build_ccd_dataset(args.cache, workers=args.workers, num_seeds=args.seeds, limit=args.limit))


if __name__ == "__main__":
    main()
