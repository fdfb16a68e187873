"""Forward-pass and training-step time of denoiser configurations on this machine.

    python -m molgen.bench.denoiser_speed [--threads 1]

Prints a markdown table: milliseconds per forward pass for 10 and 50 copies of a 21-heavy-atom
molecule (the sampling workload: one pass per conformer batch and diffusion step) and seconds per
training step (forward + backward) on 32 drug-like molecules, minimum over repeats.
"""

from __future__ import annotations

import argparse
import time

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


def main(argv: list[str] | None = None) -> str:
    import torch

    from molgen.models.graph import collate_graphs
    from molgen.models.torsion_denoiser import DenoiserConfig, TorsionDenoiser

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
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
