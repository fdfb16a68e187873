"""How well does a denoiser predict the torsion score at each noise level? (validation split)

    python -m molgen.bench.score_by_noise [--model PATH] [--data NPZ] [--molecules 256]

Perturbs the conformer-matched validation structures with wrapped-normal torsion noise at fixed sigma,
and prints, per sigma, the normalised loss (1.0 = predicting zero) and the correlation between the
predicted and the exact score.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> list[dict]:
    import numpy as np
    import torch

    from molgen.datasets.build_ccd import dataset_dir
    from molgen.datasets.conformer_dataset import TorsionConformerDataset
    from molgen.diffusion.torsion_ops import apply_torsion_deltas
    from molgen.diffusion.torus import (
        TorusSchedule,
        sample_wrapped_normal,
        wrapped_normal_score,
        wrapped_normal_score_norm,
    )
    from molgen.models.graph import collate_graphs
    from molgen.models.registry import default_model_path, load_checkpoint_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--data", default=None, help="training arrays (default: the CCD cache)")
    p.add_argument("--molecules", type=int, default=256)
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.4, 0.8, 1.5])
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = load_checkpoint_model(args.model or default_model_path()).module
    data = Path(args.data) if args.data else dataset_dir() / "ccd_train.npz"
    ds = TorsionConformerDataset(data, "val", args.molecules)
    batch = collate_graphs([ds[i] for i in range(len(ds))])
    gen = torch.Generator().manual_seed(0)
    rows = []
    print("| sigma (rad) | normalised loss | correlation(pred, exact score) |\n|---|---|---|")
    for s in args.sigmas:
        sigma = torch.full((batch.num_graphs,), s)
        st = sigma[batch.torsion_graph]
        delta = sample_wrapped_normal(st, st.shape, gen)
        pos = apply_torsion_deltas(batch.pos, batch.torsion_index, delta)
        with torch.no_grad():
            pred = TorusSchedule.score_from_sigma(model(batch.with_pos(pos), sigma), st)
        target = wrapped_normal_score(delta, st)
        loss = float(((pred - target) ** 2 / wrapped_normal_score_norm(st)).mean())
        corr = float(np.corrcoef(pred.numpy(), target.numpy())[0, 1])
        rows.append({"sigma": s, "loss": loss, "corr": corr})
        print(f"| {s} | {loss:.3f} | {corr:.3f} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
