"""Forward-pass and training-step time of denoiser configurations on this machine.

    python -m molgen.bench.denoiser_speed [--threads 1]
    python -m molgen.bench.denoiser_speed --packed [--atoms 4096] [--per-mol 16] [--threads 1]

Prints a markdown table: milliseconds per forward pass for 10 and 50 copies of a 21-heavy-atom
molecule (the sampling workload: one pass per conformer batch and diffusion step) and seconds per
training step (forward + backward) on 32 drug-like molecules, minimum over repeats.

``--packed`` times the shipped model on one sampling-sized batch instead: ETKDG conformers of drug-like
molecules (GEOM-DRUGS test SMILES, ``../shared/data/geom/drugs_test_smiles_corrected.csv``, column
``corrected_smiles``, drawn with a fixed seed; ``--per-mol`` conformers each) packed up to ``--atoms``
heavy atoms, as the sampler packs requests. It reports milliseconds per forward pass and per conformer
per forward for the reference implementation (``forward(..., reference=True)``) and the default fast one,
timed interleaved, minimum over ``--repeats`` (wall clock and thread CPU time, which is less disturbed by
other jobs on the machine), and the largest difference between the two outputs at several noise levels.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

CONFIGS = [
    {"ns": 48, "nv": 8, "num_layers": 3},
    {"ns": 48, "nv": 12, "num_layers": 4},
    {"ns": 32, "nv": 8, "num_layers": 3},
    {"ns": 64, "nv": 16, "num_layers": 4},
]
SMILES = ["C[C@H](N)C(=O)N[C@@H](Cc1ccccc1)C(=O)OCC", "CC(=O)Nc1ccc(OCCN(C)C)cc1", "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
          "COc1ccc2[nH]cc(CCNC(C)=O)c2c1", "CN1CCN(CC1)c1ccc(cc1)C(=O)Nc1ccccc1", "O=C(O)CCCc1ccc(N(CCCl)CCCl)cc1",
          "CC(C)NCC(O)COc1cccc2ccccc12", "Clc1ccc(cc1)C(c1ccccc1)N1CCN(CC1)CCOCC(=O)O"]


def _items():
    from rdkit import Chem
    from rdkit.Chem import rdDistGeom

    from molgen.chem.featurize import featurize

    items = []
    for k, smi in enumerate(SMILES):
        mol = Chem.AddHs(Chem.MolFromSmiles(smi))
        params = rdDistGeom.ETKDGv3()
        params.randomSeed = 11 + k
        rdDistGeom.EmbedMolecule(mol, params)
        g = featurize(mol)
        items.append(g.item(mol.GetConformer().GetPositions()[g.heavy_atoms]))
    return items


DEFAULT_CSV = Path(__file__).resolve().parents[2].parent / "shared/data/geom/drugs_test_smiles_corrected.csv"
PACKED_SIGMAS = (0.03, 0.3, 1.0, 3.0)


def packed_items(csv: Path | str = DEFAULT_CSV, atoms: int = 4096, per_mol: int = 16, seed: int = 0) -> list[dict]:
    """Collate items of ``per_mol`` ETKDG conformers per molecule, up to ``atoms`` heavy atoms in all.

    Molecules are drawn from ``csv`` (column ``corrected_smiles``) in a seeded random order; those that
    RDKit cannot parse or embed ``per_mol`` times, or without rotatable torsions, are skipped. Packing
    stops at the first molecule that would exceed ``atoms`` (as the sampler's atom budget does).
    """
    import csv as csv_module

    import numpy as np
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdDistGeom

    from molgen.chem.featurize import featurize
    from molgen.models.graph import topological_distances

    RDLogger.DisableLog("rdApp.*")
    with open(csv, newline="") as fh:
        smiles = [row["corrected_smiles"] for row in csv_module.DictReader(fh)]
    items: list[dict] = []
    total = 0
    for idx in np.random.default_rng(seed).permutation(len(smiles)):
        mol = Chem.MolFromSmiles(smiles[idx])
        if mol is None:
            continue
        mol = Chem.AddHs(mol)
        params = rdDistGeom.ETKDGv3()
        params.randomSeed = int(idx)
        cids = list(rdDistGeom.EmbedMultipleConfs(mol, per_mol, params))
        if len(cids) < per_mol:
            continue
        g = featurize(mol)
        if len(g.torsions) == 0:
            continue
        if total + per_mol * g.num_nodes > atoms:
            break
        topo = topological_distances(g.num_nodes, g.bond_index)
        items.extend(g.item(mol.GetConformer(c).GetPositions()[g.heavy_atoms], topo) for c in cids)
        total += per_mol * g.num_nodes
    return items


def packed(args: argparse.Namespace) -> str:
    """Reference vs fast forward pass of the shipped model on one packed batch (``--packed``)."""
    import torch

    from molgen.models.graph import collate_graphs, radius_edges
    from molgen.models.registry import default_model_path, load_checkpoint_model

    t0 = time.perf_counter()
    items = packed_items(args.csv, args.atoms, args.per_mol, args.seed)
    batch = collate_graphs(items)
    model = load_checkpoint_model(args.weights or default_model_path()).module.eval()
    n_conf, n_atoms = batch.num_graphs, batch.pos.shape[0]
    n_edges = radius_edges(batch, model.config.radius)[0].numel()
    lines = [
        (f"python -m molgen.bench.denoiser_speed --packed --atoms {args.atoms} --per-mol {args.per_mol} "
         f"--threads {args.threads} · {time.strftime('%Y-%m-%d')} · torch {torch.__version__}"),
        "",
        (f"{n_conf // args.per_mol} molecules x {args.per_mol} conformers = {n_conf} conformers, {n_atoms} heavy "
         f"atoms, {n_edges} edges, {batch.torsions.shape[0]} torsions (batch built in {time.perf_counter() - t0:.1f} s)"),
        "",
    ]
    print("\n".join(lines), flush=True)
    rows = []
    with torch.inference_mode():
        scale, worst = 0.0, 0.0
        for s in PACKED_SIGMAS:
            sigma = torch.full((n_conf,), s)
            ref, fast = model(batch, sigma, reference=True), model(batch, sigma)
            scale = max(scale, ref.abs().max().item())
            worst = max(worst, (ref - fast).abs().max().item() / ref.abs().max().item())
            rows.append(f"σ = {s}: max |fast − reference| = {(ref - fast).abs().max().item():.2e} "
                        f"(output max |score| {ref.abs().max().item():.3g})")
        sigma = torch.full((n_conf,), 0.5)
        wall = {True: [], False: []}
        cpu = {True: [], False: []}
        for _ in range(args.repeats):
            for ref in (True, False):
                t, c = time.perf_counter(), time.thread_time()
                model(batch, sigma, reference=ref)
                cpu[ref].append(time.thread_time() - c)
                wall[ref].append(time.perf_counter() - t)
    table = ["| implementation | forward, wall (ms) | per conformer, wall (ms) | forward, CPU (ms) | per conformer, CPU (ms) |",
             "|---|---|---|---|---|"]
    for ref, name in ((True, "reference (e3nn TensorProduct)"), (False, "fast (default)")):
        w, c = min(wall[ref]) * 1e3, min(cpu[ref]) * 1e3
        table.append(f"| {name} | {w:.1f} | {w / n_conf:.3f} | {c:.1f} | {c / n_conf:.3f} |")
    speed = (f"speed-up: {min(wall[True]) / min(wall[False]):.2f}x wall, {min(cpu[True]) / min(cpu[False]):.2f}x CPU "
             f"(min of {args.repeats}, interleaved)")
    out = "\n".join(table + ["", speed, ""] + rows + [f"largest difference relative to the output scale: {worst:.1e}"])
    print(out, flush=True)
    return "\n".join(lines) + "\n" + out


def main(argv: list[str] | None = None) -> str:
    import torch

    from molgen.models.graph import collate_graphs
    from molgen.models.torsion_denoiser import DenoiserConfig, TorsionDenoiser

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--packed", action="store_true", help="reference vs fast forward of the shipped model on a packed batch")
    p.add_argument("--atoms", type=int, default=4096, help="--packed: heavy atoms per batch")
    p.add_argument("--per-mol", type=int, default=16, help="--packed: conformers per molecule")
    p.add_argument("--seed", type=int, default=0, help="--packed: order in which molecules are drawn")
    p.add_argument("--csv", default=str(DEFAULT_CSV), help="--packed: SMILES file (column corrected_smiles)")
    p.add_argument("--weights", default=None, help="--packed: checkpoint (default: the shipped model)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.packed:
        return packed(args)
    items = _items()
    rows = ["| config | params | forward, 10 conformers (ms) | forward, 50 conformers (ms) | train step, 32 molecules (s) |",
            "|---|---|---|---|---|"]
    print(f"python -m molgen.bench.denoiser_speed --threads {args.threads} · {time.strftime('%Y-%m-%d')} · "
          f"torch {torch.__version__}\n", flush=True)
    print("\n".join(rows), flush=True)
    for cfg in CONFIGS:
        torch.manual_seed(0)
        model = TorsionDenoiser(DenoiserConfig(**cfg))
        times = []
        for n in (10, 50):
            batch = collate_graphs([items[0]] * n)
            sigma = torch.full((n,), 0.5)
            model.eval()
            with torch.no_grad():
                model(batch, sigma)
                best = float("inf")
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    model(batch, sigma)
                    best = min(best, time.perf_counter() - t)
            times.append(best * 1000)
        model.train()
        batch = collate_graphs(items * 4)
        sigma = torch.full((batch.num_graphs,), 0.5)
        best = float("inf")
        for _ in range(max(2, args.repeats // 3)):
            t = time.perf_counter()
            model(batch, sigma).pow(2).mean().backward()
            best = min(best, time.perf_counter() - t)
        params = sum(p.numel() for p in model.parameters())
        rows.append(f"| {cfg} | {params} | {times[0]:.1f} | {times[1]:.1f} | {best:.2f} |")
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    return table


if __name__ == "__main__":
    main()
