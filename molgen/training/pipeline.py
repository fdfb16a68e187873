"""The one-command training pipeline behind ``molgen train conformers``.

CCD build (cached, resumable) -> compact training arrays -> denoiser training (resumable) -> slim
weights file and model card. Every step skips work whose output already exists.
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

from molgen.atomic import atomic_path
from molgen.datasets.build_ccd import build_ccd_dataset, dataset_dir
from molgen.datasets.conformer_dataset import export_training_arrays, file_sha256


def prepare_training_data(cache: Path | None = None, *, workers: int = 2, seeds: int = 4) -> Path:
    """Build the CCD conformer dataset if needed and return the path of its training arrays (``.npz``)."""
    pkl = build_ccd_dataset(cache, workers=workers, num_seeds=seeds)
    npz = dataset_dir(cache) / "ccd_train.npz"
    if not npz.exists():
        counts = export_training_arrays(pkl, npz)
        print(f"training arrays: {npz} {counts}", file=sys.stderr)
    return npz


#: what a model card says a network of each checkpoint format is, what it was trained on and its limits
_CARD_TEXT = {
    "molgen-torsion-denoiser/1": (
        "Torsional-diffusion denoiser (E(3)-equivariant, e3nn) that scores the rotatable torsions of a molecule\n"
        "given its heavy-atom graph and 3D coordinates. Used by `molgen conformers` by default.",
        "PDB Chemical Component Dictionary (biotite), train split, held-out molecules removed",
        "Intended use: drug-like organic\nmolecules (elements H, C, N, O, F, P, S, Cl, Br, I, B, Si, Se); local structure "
        "(bond lengths, angles,\nrings) comes from RDKit ETKDGv3, so ring conformations are only as good as ETKDG's. "
        "Not trained on\nmetal complexes. Evaluation: see BENCHMARKS.md (`molgen bench conformers`).",
    ),
    "molgen-molecule-denoiser/1": (
        "De novo 3D molecule generator (EDM-style diffusion over positions and one-hot atom types and charges,\n"
        "E(3)-equivariant e3nn network, classifier-free guidance on the conditions listed below). Used by\n"
        "`molgen sample molecules`.",
        "QM9 (qm9pack), EDM's split, held-out molecules removed",
        "Intended use: small organic molecules like QM9's (at most 9 heavy atoms of C, N, O, F, with hydrogens).\n"
        "Every sample is checked: bonds perceived from the geometry, sanitised; invalid ones are counted, never\n"
        "passed off as valid. Evaluation: see BENCHMARKS.md (`molgen bench molecules`).",
    ),
    "molgen-cartesian-conformer/1": (
        "Cartesian conformer generator: diffusion over every atom position of a given molecular graph\n"
        "(E(3)-equivariant e3nn network reading the graph). Used by `molgen conformers --method cartesian`.",
        "QM9 (qm9pack) DFT geometries, EDM's split, held-out molecules removed",
        "Intended use: QM9-like small molecules (C, N, O, F with hydrogens). Stereocentres are fixed by\n"
        "reflection and every conformer is validated like torsional ones. Evaluation: BENCHMARKS.md\n"
        "(`molgen bench conformers --set qm9`).",
    ),
    "molgen-property-regressor/1": (
        "QM9 property regressor (E(3)-invariant e3nn network) that judges property-guided generation as EDM does:\n"
        "trained on the first half D_a of the training split, the guided generator on the second half D_b.",
        "QM9 (qm9pack), EDM's split, held-out molecules removed",
        "Intended use: `molgen bench molecules --guidance-sweep --regressor` (MAE of guided samples, with the\n"
        "shuffled and data baselines). Validation loss: L1 of the normalised properties (value / MAD).",
    ),
    "molgen-protein-torsion/1": (
        "Protein torsion model of one system: torsional diffusion over every rotatable bond (phi, psi, chi, ...)\n"
        "of the system stored in the checkpoint, learnt from its MD frames. Used by `molgen protein sample`.",
        "molecular dynamics frames (see the training command), the last part of each trajectory held out",
        "Intended use: this system only (its topology is in the checkpoint). Bond lengths and angles are the\n"
        "stored structure's; every structure is validated (Cα–Cα, peptide bonds, clashes, chirality, bonds,\n"
        "angles). Evaluation: BENCHMARKS.md (`molgen bench protein`).",
    ),
}


def export_weights(checkpoint: Path, out: Path, *, name: str, command: str | None = None) -> Path:
    """Write a slim copy of ``checkpoint`` (weights + configs, no optimizer) and a model card beside it.

    The model card (``<out stem>.md``) records the command, data hash, steps, wall time, device and
    validation loss; ``<out stem>.json`` holds the same facts and the loss log for plotting.
    """
    import torch

    from molgen.training.checkpoint import read_checkpoint

    state = read_checkpoint(checkpoint)
    last = read_checkpoint(checkpoint.with_name("last.pt")) if checkpoint.with_name("last.pt").exists() else state
    summary_path = checkpoint.with_name("summary.json")
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if "wall_s" not in summary:  # a run stopped before its end: the last checkpoint's own clock and config
        summary["wall_s"] = round(float(last["extra"].get("elapsed_s", 0.0)), 1) or None
        summary["device"] = (last.get("train_config") or {}).get("device")
    slim = {k: v for k, v in state.items() if k != "optimizer"}
    slim["extra"] = {"name": name, "val_loss": state["extra"].get("val_loss")}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(slim, tmp)
    facts = {
        "name": name,
        "command": command,
        "data_hash": state["data_hash"],
        "step_of_weights": state["step"],
        "steps_trained": last["step"],
        "validation_loss": state["extra"].get("val_loss"),
        "wall_time_s": summary.get("wall_s"),
        "device": summary.get("device"),
        "train_molecules": summary.get("train_molecules"),
        "model_config": state["model_config"],
        "processes": state.get("processes") or ({"torsion": state["schedule"]} if "schedule" in state else {}),
        "train_config": state["train_config"],
        "loss_log": last["extra"].get("log", []),
        "file_sha256": file_sha256(out),
        "exported": time.strftime("%Y-%m-%d"),
    }
    out.with_suffix(".json").write_text(json.dumps(facts, indent=1))
    cfg = state["train_config"]
    what, data, use = _CARD_TEXT.get(state["format"], (f"A `{state['format']}` network.", "see the training config", ""))
    task_facts = state.get("task") or {}
    half_text = f", half {task_facts['half']}" if task_facts.get("half") else ""
    conditions_text = ", ".join(task_facts.get("conditions", [])) or "none"
    val_label = ("validation loss (L1 of value / MAD; about 0.8 = predicting the mean)"
                 if state["format"] == "molgen-property-regressor/1" else "validation loss (1.0 = predicting zero)")
    card = f"""# Model card: {name}

{what}

| | |
|---|---|
| training command | `{command or 'unknown'}` |
| training data | {data}{half_text} |
| conditions | {conditions_text} |
| training molecules | {summary.get('train_molecules')} |
| data hash (sha256 of the training data's description) | `{state['data_hash']}` |
| steps trained / step of these weights | {last['step']} / {state['step']} |
| batch size, learning rate | {cfg.get('batch_size')}, {cfg.get('lr')} (cosine to {cfg.get('min_lr')}) |
| wall time | {summary.get('wall_s')} s on {summary.get('device')} |
| {val_label} | {state['extra'].get('val_loss')} |
| model config | `{json.dumps(state['model_config'])}` |
| noise processes | `{json.dumps(facts['processes'])}` |
| weights file sha256 | `{facts['file_sha256']}` |

The loss curve is in `{out.with_suffix('.json').name}` (`loss_log`). {use}
"""
    out.with_suffix(".md").write_text(card)
    return out


def train_conformer_model(
    *,
    out: Path,
    cache: Path | None = None,
    data: Path | None = None,
    workers: int = 2,
    seeds: int = 4,
    export: Path | None = None,
    name: str | None = None,
    **train_options,
) -> Path:
    """Build data if needed, train (or resume), and optionally export weights; returns the best checkpoint.

    The exported model is named ``name``, by default the stem of ``export`` (``torsion_ccd_v2.pt`` ->
    ``torsion_ccd_v2``); the name is stored in the weights and written into every conformer's ``model`` tag.
    """
    from molgen.training.trainer import TrainConfig, train

    npz = Path(data) if data else prepare_training_data(cache, workers=workers, seeds=seeds)
    cfg = TrainConfig(data=str(npz), out=str(out), **train_options)
    (Path(out)).mkdir(parents=True, exist_ok=True)
    (Path(out) / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))
    best = train(cfg)
    if export is not None:
        command = "molgen " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else None
        export_weights(best, Path(export), name=name or Path(export).stem, command=command)
        print(f"exported {export} ({platform.node()})", file=sys.stderr)
    return best


def plot_loss_curve(facts_json: Path, png: Path) -> Path:
    """Plot the training and validation loss of an exported model (its ``.json`` facts) to ``png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    facts = json.loads(Path(facts_json).read_text())
    log = facts["loss_log"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([e["step"] for e in log], [e["loss"] for e in log], lw=1, label="training (running mean)")
    val = [e for e in log if "val_loss" in e]
    ax.plot([e["step"] for e in val], [e["val_loss"] for e in val], "o-", ms=3, label="validation (EMA weights)")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="zero score")
    ax.set_xlabel("step")
    ax.set_ylabel("normalised score-matching loss")
    ax.set_title(f"{facts['name']} ({facts.get('device')}, {facts.get('wall_time_s')} s)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png
