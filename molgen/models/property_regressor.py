"""E(3)-invariant regressor of molecular properties, the judge of property-conditioned generation.

EDM (Hoogeboom et al. 2022, Sec. 5.2) measures classifier-free-guided generation with a property network
trained on one half of the QM9 training split (``D_a``) while the generative model trains on the other
half (``D_b``): for each generated molecule, the absolute error between the requested property and the
network's prediction. This module is that network (EDM uses an EGNN; here the e3nn layers of
:mod:`molgen.models.layers`, as in :class:`~molgen.models.molecule_denoiser.MoleculeDenoiser`).

Input: a :class:`~molgen.models.graph.GraphBatch` from :func:`~molgen.models.graph.node_batch` whose
``node_features`` ``(N, type_dim)`` are unscaled one-hot atom types and ``pos`` ``(N, 3)`` clean positions
in Å (any origin: only differences are read).

Output: ``(B, num_properties)`` *normalised* properties ``(p - mean) / MAD``; the normalisation constants
live in the checkpoint (``meta["task"]["normalisation"]``) and :func:`molgen.bench.property_mae.predict_properties`
converts back to raw units (alpha in Bohr^3, gap in eV).

Architecture:

1. Node embedding: an MLP of the one-hot types to ``ns`` scalars.
2. Edges: the complete graph of each molecule (QM9 molecules have at most 29 atoms); invariant edge
   features are a Gaussian RBF of the distance (up to ``rbf_cutoff`` Å) and ``distance / rbf_cutoff``;
   directions enter through spherical harmonics up to ``lmax``.
3. ``num_layers`` :class:`~molgen.models.layers.Interaction` layers with hidden irreps
   ``ns x 0e + nv x 1o + nv x 1e`` (the vectors carry directional information between layers; the
   readout reads the ``0e`` scalars only).
4. Readout: an MLP per atom of the ``0e`` scalars, summed (``readout="sum"``, EDM's choice; extensive
   properties such as alpha grow with the molecule) or averaged (``"mean"``) per molecule, then an MLP to
   ``num_properties`` outputs.

Only ``0e`` scalars reach the readout, so the prediction is invariant under rotations, reflections and
translations of the positions and under permutations of a molecule's atoms.

Checkpoints have format :data:`PROPERTY_FORMAT`; importing this module registers it with
:mod:`molgen.models.registry` (kind ``"property"``, no noise processes). Load one with
:func:`load_property_regressor`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from e3nn import o3
from torch import Tensor, nn

from molgen.models import registry
from molgen.models.graph import GraphBatch, radius_edges
from molgen.models.layers import GaussianRBF, interaction_stack, mlp, run_interactions

if TYPE_CHECKING:
    from molgen.models.registry import LoadedModel

__all__ = [
    "PROPERTY_FORMAT",
    "PropertyRegressor",
    "PropertyRegressorConfig",
    "build_property_regressor",
    "load_property_regressor",
    "property_config_dict",
]

#: checkpoint format of property regressors (registered with :mod:`molgen.models.registry` on import)
PROPERTY_FORMAT = "molgen-property-regressor/1"


@dataclass
class PropertyRegressorConfig:
    """Hyper-parameters of :class:`PropertyRegressor` (stored inside every checkpoint).

    Attributes:
        type_dim: width of the one-hot atom rows (the training task sets it from its encoding).
        num_properties: number of predicted properties ``P``.
        ns, nv: scalar and vector (each of ``1o`` and ``1e``) channels of the hidden irreps.
        num_layers: interaction layers.
        lmax: highest degree of the edge spherical harmonics.
        num_rbf: Gaussian radial basis functions on ``[0, rbf_cutoff]`` Å.
        rbf_cutoff: Å; the RBF envelope vanishes beyond it (the graph stays complete).
        edge_dim: width of the invariant edge embedding.
        readout: ``"sum"`` or ``"mean"`` of the per-atom scalars over a molecule.
    """

    type_dim: int = 8
    num_properties: int = 1
    ns: int = 64
    nv: int = 16
    num_layers: int = 4
    lmax: int = 2
    num_rbf: int = 24
    rbf_cutoff: float = 10.0
    edge_dim: int = 32
    readout: str = "sum"


class PropertyRegressor(nn.Module):
    """Normalised molecular properties from atom types and positions (see the module docstring)."""

    def __init__(self, config: PropertyRegressorConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or PropertyRegressorConfig()
        if cfg.readout not in ("sum", "mean"):
            raise ValueError(f"readout must be 'sum' or 'mean', got {cfg.readout!r}")
        if cfg.num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {cfg.num_layers}")
        self.node_embed = mlp([cfg.type_dim, cfg.ns, cfg.ns])
        self.rbf = GaussianRBF(cfg.num_rbf, cfg.rbf_cutoff)
        self.edge_embed = mlp([cfg.num_rbf + 1, cfg.edge_dim, cfg.edge_dim])
        self.irreps_sh = o3.Irreps.spherical_harmonics(cfg.lmax)
        # every layer outputs the hidden irreps: a scalars-only last layer would need an Interaction without
        # gated irreps, which e3nn's Gate rejects ("0x0e" gates)
        self.layers = interaction_stack(cfg.ns, cfg.nv, cfg.num_layers, self.irreps_sh, cfg.edge_dim)
        self.node_head = mlp([cfg.ns, cfg.ns, cfg.ns])
        self.graph_head = mlp([cfg.ns, cfg.ns, cfg.num_properties])

    def forward(self, batch: GraphBatch, reference: bool = False) -> Tensor:
        """``(B, num_properties)`` normalised properties of the ``B`` molecules of ``batch``.

        Args:
            batch: ``node_features`` ``(N, type_dim)`` one-hot atom types (unscaled), ``pos`` ``(N, 3)`` Å.
            reference: run the e3nn reference implementation of the interaction layers (slower; the
                same function as the default fast path).
        """
        cfg = self.config
        n_graphs = batch.num_graphs
        h = self.node_embed(batch.node_features.to(batch.pos.dtype))
        src, dst, _, _ = radius_edges(batch, None)
        vec = batch.pos.index_select(0, src) - batch.pos.index_select(0, dst)
        dist = vec.norm(dim=-1)
        rbf = self.rbf(dist) if reference else self.rbf.forward_fast(dist)
        emb = self.edge_embed(torch.cat([rbf, (dist / cfg.rbf_cutoff)[:, None]], dim=-1))
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        h = run_interactions(self.layers, h, src, dst, sh, emb, reference)
        atom = self.node_head(h[:, : cfg.ns])
        pooled = atom.new_zeros((n_graphs, cfg.ns)).index_add_(0, batch.batch, atom)
        if cfg.readout == "mean":
            counts = torch.bincount(batch.batch, minlength=n_graphs).clamp_min(1).to(atom.dtype)
            pooled = pooled / counts[:, None]
        return self.graph_head(pooled)


def build_property_regressor(config: dict) -> PropertyRegressor:
    """A :class:`PropertyRegressor` from a stored config dict."""
    return PropertyRegressor(PropertyRegressorConfig(**config))


def property_config_dict(model: PropertyRegressor) -> dict:
    """The config of ``model`` as a plain dict (for checkpoints)."""
    return asdict(model.config)


def _build_property(state: dict, device: str) -> tuple[str, Any, dict]:
    """Registry builder: ``("property", regressor in eval mode on device, {})`` (nothing is diffused)."""
    module = build_property_regressor(state["model_config"])
    module.load_state_dict(state["state_dict"])
    module.eval().to(device)
    return "property", module, {}


registry.register_model_type(PROPERTY_FORMAT, _build_property)


def load_property_regressor(path: str | Path, device: str = "cpu") -> LoadedModel:
    """Load a property regressor checkpoint (format :data:`PROPERTY_FORMAT`), uncached.

    ``meta["task"]`` holds what predictions need: ``properties`` (names, output order),
    ``normalisation`` (``{name: {"mean", "mad"}}`` in raw units: Bohr^3 for alpha, eV for gap),
    ``encoding`` (:class:`~molgen.chem.atom_encoding.AtomEncoding` dict), ``charges`` (whether the atom
    rows hold formal charges) and ``half`` (the QM9 training half it saw).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a checkpoint of a registered model type, or not a property regressor.
    """
    registry.register_model_type(PROPERTY_FORMAT, _build_property)  # in case a registry reset dropped it
    loaded = registry.load_checkpoint_model(path, device)
    if loaded.kind != "property":
        raise ValueError(f"{path}: a {loaded.kind!r} model, not a property regressor ({PROPERTY_FORMAT})")
    return loaded
