"""Equivariant building blocks (e3nn) in forms that are cheap on a CPU.

The interaction uses a *depthwise* (``uvu``) tensor product between node features and the edge's
spherical harmonics, with per-edge path weights from a small MLP on invariant edge features, followed by
an ``o3.Linear`` that mixes channels and a gate nonlinearity. On 2 CPU cores this is several times
faster than a fully connected tensor product with per-edge weights (``FullyConnectedTensorProduct``),
whose per-edge weight tensor grows with the product of input and output multiplicities.

:meth:`Interaction.forward` is the reference (e3nn's ``TensorProduct``, whose weights layout the
checkpoints keep); :meth:`Interaction.forward_fast` computes the same function several times faster on
one CPU thread (see its docstring): per-edge work runs over blocks of edges so that no edge-sized
intermediate is allocated, the tensor product is a small batched matmul against Clebsch-Gordan blocks
contracted with the edge's spherical harmonics, and ``o3.Linear`` is applied per node as a matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import torch
from e3nn import o3
from e3nn.nn import Gate
from torch import Tensor, nn


def scatter_mean(values: Tensor, index: Tensor, dim_size: int) -> Tensor:
    """Mean of ``values`` ``(E, ...)`` over equal ``index`` ``(E,)`` into ``(dim_size, ...)`` (zeros where
    nothing arrives), in plain torch: PyG's ``scatter`` would import ``torch_geometric``, which costs about
    a second of start-up (it loads ``torch._dynamo``)."""
    out = values.new_zeros((dim_size, *values.shape[1:])).index_add_(0, index, values)
    count = values.new_zeros(dim_size).index_add_(0, index, values.new_ones(index.shape[0]))
    return out / count.clamp_min(1.0).view(-1, *([1] * (values.dim() - 1)))


def mlp(sizes: list[int], act: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """Plain MLP with ``act`` between layers (none after the last)."""
    layers: list[nn.Module] = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class GaussianRBF(nn.Module):
    """Gaussian radial basis ``(E,) -> (E, num)`` on ``[0, cutoff]`` Å with a smooth cosine envelope."""

    def __init__(self, num: int, cutoff: float) -> None:
        super().__init__()
        self.register_buffer("centers", torch.linspace(0.0, cutoff, num))
        self.width = cutoff / num
        self.cutoff = cutoff

    def forward(self, d: Tensor) -> Tensor:
        rbf = torch.exp(-(((d[:, None] - self.centers) / self.width) ** 2))
        envelope = 0.5 * (torch.cos(math.pi * (d / self.cutoff).clamp(max=1.0)) + 1.0)
        return rbf * envelope[:, None]

    def forward_fast(self, d: Tensor) -> Tensor:
        """:meth:`forward` with in-place steps and without ``exp`` underflow.

        In float32, ``exp(x)`` of ``x < -87.3`` is subnormal or zero, and PyTorch's vectorised ``exp``
        takes a slow path for such lanes (10-30x slower); with ``width = cutoff / num`` most RBF entries
        are there. Clamping the exponent at -87 changes those entries by less than ``2e-38``.
        """
        rbf = -(((d[:, None] - self.centers) / self.width) ** 2)
        if rbf.dtype in (torch.float32, torch.float16, torch.bfloat16):
            rbf = rbf.clamp(min=-87.0)
        envelope = 0.5 * (torch.cos(math.pi * (d / self.cutoff).clamp(max=1.0)) + 1.0)
        return torch.exp(rbf) * envelope[:, None]


class SigmaEmbedding(nn.Module):
    """Sinusoidal embedding ``(B,) -> (B, dim)`` of the noise level through ``log(sigma)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(math.log(0.25), math.log(8.0), dim // 2)))

    def forward(self, sigma: Tensor) -> Tensor:
        x = torch.log(sigma)[:, None] * self.freqs
        return torch.cat([torch.sin(x), torch.cos(x)], dim=-1)


class Interaction(nn.Module):
    """One equivariant message-passing layer with a residual connection.

    ``h_i <- h_i + Gate(Linear(mean_j TP_uvu(h_j, Y(r_ij); w(e_ij, s_i, s_j))))``, where ``Y`` are
    spherical harmonics of the edge direction and ``w`` the per-edge, per-path weights.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, irreps_sh: o3.Irreps, edge_dim: int, num_scalars: int) -> None:
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        self.num_scalars = num_scalars
        out_types = {ir for _, ir in self.irreps_out}
        mid, instructions = [], []
        for i, (mul, ir_in) in enumerate(self.irreps_in):
            for j, (_, ir_sh) in enumerate(o3.Irreps(irreps_sh)):
                for ir_out in ir_in * ir_sh:
                    if ir_out in out_types:
                        instructions.append((i, j, len(mid), "uvu", True))
                        mid.append((mul, ir_out))
        irreps_mid = o3.Irreps(mid)
        self.tp = o3.TensorProduct(
            self.irreps_in, irreps_sh, irreps_mid, instructions, shared_weights=False, internal_weights=False
        )
        self.weights = mlp([edge_dim + 2 * num_scalars, edge_dim, self.tp.weight_numel])
        scalars = o3.Irreps([(m, ir) for m, ir in self.irreps_out if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in self.irreps_out if ir.l > 0])
        self.gate = Gate(
            scalars, [torch.nn.functional.silu] * len(scalars),
            f"{gated.num_irreps}x0e", [torch.sigmoid],
            gated,
        )
        self.linear = o3.Linear(irreps_mid, self.gate.irreps_in)
        self.skip = o3.Linear(self.irreps_in, self.irreps_out) if self.irreps_in != self.irreps_out else None

        # forward_fast: constant index tables, a fast gate, cached weight-derived matrices (none of them
        # is module state: the state_dict is the reference implementation's)
        self._plan = _FastPlan(self)
        self._gate_plan: dict | None = None
        self._gate_plan = self._make_gate_plan()
        self._fast_cache: tuple | None = None

    def forward(self, h: Tensor, src: Tensor, dst: Tensor, edge_sh: Tensor, edge_emb: Tensor) -> Tensor:
        """Reference implementation (e3nn ``TensorProduct``, edge-sized ``torch.cat``, ``scatter``)."""
        s = h[:, : self.num_scalars]
        w = self.weights(torch.cat([edge_emb, s[src], s[dst]], dim=-1))
        msg = self.tp(h[src], edge_sh, w)
        agg = scatter_mean(msg, dst, h.shape[0])
        out = self.gate(self.linear(agg))
        residual = h if self.skip is None else self.skip(h)
        return residual + out

    def forward_fast(self, h: Tensor, edges: EdgeSet, edge_term: Tensor | None = None) -> Tensor:
        """The same function as :meth:`forward`, faster; ``edges`` from :meth:`EdgeSet.build`.

        ``edge_term``: optionally ``edges.emb @ W_e^T`` (``(E, edge_dim)``, ``W_e`` the edge columns of the
        weight MLP's first layer), precomputed by the caller; computed per block of edges when None.
        ``edges.sh`` must be e3nn spherical harmonics with ``normalization="component"`` (``Y_0 = 1``).

        * Per-edge work runs over blocks of ``edges.chunks`` edges, accumulating messages into the nodes
          with ``index_add_``: no edge-sized intermediate (``(E, 344)`` messages, ``(E, 128)`` MLP inputs) is
          allocated, which on a CPU costs more in page faults and cache misses than the arithmetic.
        * The first layer of the weight MLP, ``W [e, s_src, s_dst] + b``, is split into
          ``W_e e + (W_s s)[src] + (W_d s + b)[dst]``: the node terms are computed once per node.
        * The tensor product ``TP_uvu(h_src, Y; w)``: for each input degree ``l1`` the edge's spherical
          harmonics are contracted with the Wigner-3j blocks of every path out of ``l1`` (one small matmul
          ``Y @ CG`` for all of them). The paths of the ``1o`` and ``1e`` inputs are then one batched matmul
          per block of edges; those of the scalar inputs are outer products, and the ones that make vectors
          go through their block of ``self.linear`` before the outer product (it mixes channels only, so it
          commutes with the product and with the mean): 8 output channels per edge instead of 48.
          Channels are the innermost dimension throughout; the MLP's last layer has its rows permuted so
          that the path weights come out in that layout.
        * The mean, the paths' normalisation constants and ``self.linear`` (its matrix is read off an
          identity each call) are applied once per node, per degree ``l`` as one matmul.
        """
        plan = self._plan
        n = h.shape[0]
        k = self._fast_constants(h.dtype, h.device)
        s = h[:, : self.num_scalars]
        node_src = s @ k["w1_src"]
        node_dst = torch.addmm(k["b1"], s, k["w1_dst"])
        w1e, w2, b2, cg, mixes = k["w1_edge"], k["w2"], k["b2"], k["cg"], k["mixes"]
        # node features with each group's channels innermost: (N, dim_in * mul) per group
        hx = torch.cat(
            [h[:, g.x_start : g.x_stop].view(n, g.mul, g.dim_in).transpose(1, 2).reshape(n, -1) for g in plan.groups], 1
        )
        aggs = [h.new_zeros((n, width)) for width in plan.agg_widths]
        accs = [h.new_zeros((n, 2 * l + 1, len(sel))) for l, _, _, sel in plan.mix_rows]
        for a, b in edges.chunks:
            sc, dc = edges.src[a:b], edges.dst[a:b]
            c = b - a
            z = node_src.index_select(0, sc).add_(node_dst.index_select(0, dc))
            z = torch.addmm(z, edges.emb[a:b], w1e) if edge_term is None else z.add_(edge_term[a:b])
            w = torch.addmm(b2, nn.functional.silu(z), w2)
            x = hx.index_select(0, sc)
            coef = edges.sh[a:b] @ cg
            for grp in plan.groups:
                xg = x[:, grp.hx_start : grp.hx_stop]
                wg = w[:, grp.w_start : grp.w_stop].view(c, grp.num_slots, grp.mul)
                cg_g = coef[:, grp.cg_start : grp.cg_stop]
                if grp.dim_in == 1:  # scalar inputs: per path an outer product with Y @ CG
                    for slot, (lo, hi, target) in enumerate(grp.slots):
                        xw = wg[:, slot] * xg  # (c, mul), contiguous (index_add_ is slow on strided input)
                        if target[0] == "const":  # Y_0 = 1: the message is x w (CG constant in the scale)
                            aggs[target[1]].index_add_(0, dc, xw)
                        elif target[0] == "agg":  # scalar output: (c, mul)
                            aggs[target[1]].index_add_(0, dc, xw * cg_g[:, lo:hi])
                        else:  # vector output, channels mixed first: (c, 2 l + 1, outputs)
                            q = xw @ mixes[target[1]]
                            accs[target[1]].index_add_(0, dc, cg_g[:, lo:hi, None] * q[:, None, :])
                else:  # (c, width * slots, dim_in) @ (c, dim_in, mul), times the weights: (c, width, slots, mul)
                    r = torch.bmm(cg_g.view(c, -1, grp.dim_in), xg.view(c, grp.dim_in, grp.mul))
                    msg = r.view(c, grp.width, grp.num_slots, grp.mul) * wg[:, None]
                    aggs[grp.agg].index_add_(0, dc, msg.view(c, -1))
        agg = aggs[0] if len(aggs) == 1 else torch.cat(aggs, dim=1)
        out = k["bias"].expand(n, -1).clone()
        for (l, _, _, _), cols, mat, out_cols in zip(plan.linear_blocks, k["cols"], k["blocks"], k["out_cols"]):
            d = 2 * l + 1
            y = (agg.index_select(1, cols).view(n * d, -1) @ mat).view(n, d, -1)
            out.index_add_(1, out_cols, y.transpose(1, 2).reshape(n, -1) * edges.inv_deg[:, None])
        for acc, out_cols in zip(accs, k["mix_out_cols"]):
            out.index_add_(1, out_cols, acc.transpose(1, 2).reshape(n, -1) * edges.inv_deg[:, None])
        out = self._gate_fast(out)
        residual = h if self.skip is None else torch.addmm(k["skip_bias"], h, k["skip"])
        return residual + out

    def _fast_constants(self, dtype: torch.dtype, device: torch.device) -> dict:
        """Weight-derived matrices of :meth:`forward_fast`; reused while the weights are unchanged.

        Recomputed on every call when autograd records (training), so gradients reach the weights.
        """
        params = [p for m in (self.weights, self.linear, self.skip) if m is not None for p in m.parameters()]
        key = (dtype, device, torch.is_inference_mode_enabled(), tuple((p.data_ptr(), p._version) for p in params))
        cacheable = not (torch.is_grad_enabled() and any(p.requires_grad for p in params))
        if cacheable and self._fast_cache is not None and self._fast_cache[0] == key:
            return self._fast_cache[1]
        plan = self._plan
        lin1, lin2 = self.weights[0], self.weights[2]
        ed, ns = lin1.in_features - 2 * self.num_scalars, self.num_scalars
        perm = plan.weight_perm.to(device)
        # o3.Linear (and the skip) as matrices: rows of an identity through the module, minus the bias
        eye = torch.eye(plan.mid_dim, dtype=dtype, device=device)
        bias = self.linear(eye[:1] * 0)
        dense = self.linear(eye) - bias

        def block(mid: Tensor, scale: Tensor, l: int) -> Tensor:
            return dense[mid.to(device)][:, plan.out_cols[l][0].to(device)] * scale.to(device, dtype)[:, None]

        consts = {
            "w1_edge": lin1.weight[:, :ed].t().to(dtype),
            "w1_src": lin1.weight[:, ed : ed + ns].t().to(dtype),
            "w1_dst": lin1.weight[:, ed + ns :].t().to(dtype),
            "b1": lin1.bias.to(dtype),
            "w2": lin2.weight[perm].t().to(dtype),
            "b2": lin2.bias[perm].to(dtype),
            "cg": plan.cg_matrix.to(device, dtype),
            "bias": bias,
            "mixes": [block(mid, scale, l)[:, sel.to(device)] for l, mid, scale, sel in plan.mix_rows],
            "mix_out_cols": [plan.out_cols[l][:, sel].t().flatten().to(device) for l, _, _, sel in plan.mix_rows],
            "blocks": [block(mid, scale, l) for l, _, mid, scale in plan.linear_blocks],
            "cols": [cols.flatten().to(device) for _, cols, _, _ in plan.linear_blocks],
            "out_cols": [plan.out_cols[l].t().flatten().to(device) for l, _, _, _ in plan.linear_blocks],
        }
        if self.skip is not None:
            eye_in = torch.eye(self.irreps_in.dim, dtype=dtype, device=device)
            consts["skip_bias"] = self.skip(eye_in[:1] * 0)[0]
            consts["skip"] = self.skip(eye_in) - consts["skip_bias"]
        if cacheable:
            self._fast_cache = (key, consts)
        return consts

    def _gate_fast(self, x: Tensor) -> Tensor:
        """``self.gate(x)`` without e3nn's per-irrep loops (the same activations, one product)."""
        gp = self._gate_plan
        if gp is None:
            return self.gate(x)
        ns, ng = gp["num_scalars"], gp["num_gates"]
        scalars = self.gate.act_scalars.acts[0](x[:, :ns])
        gates = self.gate.act_gates.acts[0](x[:, ns : ns + ng])
        gated = x[:, ns + ng :] * gates.index_select(1, gp["gate_index"].to(x.device))
        if gp["factor"] != 1.0:
            gated = gated * gp["factor"]
        return torch.cat([scalars, gated], dim=1)

    def _make_gate_plan(self) -> dict | None:
        """Layout of the gate's input for :meth:`_gate_fast`, or None (use e3nn's) if it does not fit.

        The fast gate assumes input columns ``[scalars | gates | gated]`` (one activation each) and an
        elementwise product with a constant factor; it is checked against ``self.gate`` on random input.
        """
        g = self.gate
        if len(g.act_scalars.acts) != 1 or len(g.act_gates.acts) != 1:
            return None
        ns, ng, dim_gated = g.irreps_scalars.dim, g.irreps_gates.dim, g.irreps_gated.dim
        gate_index = torch.cat(
            [torch.arange(m).repeat_interleave(ir.dim) + off for (m, ir), off in
             zip(g.irreps_gated, [sum(m for m, _ in g.irreps_gated[:i]) for i in range(len(g.irreps_gated))])]
        ) if dim_gated else torch.zeros(0, dtype=torch.long)
        with torch.no_grad():
            ones = torch.ones(1, dim_gated)
            factors = g.mul(ones, torch.ones(1, ng))[0] if dim_gated else ones[0]
        if dim_gated and not torch.allclose(factors, factors[0].expand_as(factors), rtol=0, atol=1e-12):
            return None
        plan = {"num_scalars": ns, "num_gates": ng, "gate_index": gate_index,
                "factor": float(factors[0]) if dim_gated else 1.0}
        self._gate_plan = plan
        with torch.no_grad():
            x = torch.randn(5, g.irreps_in.dim, generator=torch.Generator().manual_seed(0))
            ok = torch.allclose(self._gate_fast(x), g(x), rtol=1e-5, atol=1e-6)
        return plan if ok else None


@dataclass
class _Group:
    """Input irreps of one degree ``l1`` (contiguous in the node features) and their tensor-product paths.

    A *slot* is one ``(spherical-harmonic irrep, l_out)`` pair: the paths of all the group's irreps that
    share a Wigner-3j block. For ``dim_in == 1`` each slot is ``(lo, hi, target)``: its columns of the
    group's ``Y @ CG`` and where its messages go, ``("agg", block)``, ``("const", block)`` (``Y_0``: the
    constant coefficient is in the scale) or ``("mix", mix)``.
    """

    x_start: int
    x_stop: int
    hx_start: int
    hx_stop: int
    mul: int  # total multiplicity of the group's irreps
    dim_in: int  # 2 l1 + 1
    num_slots: int
    width: int  # output columns per slot (dim_in > 1: padded to the largest 2 l_out + 1)
    slots: list
    agg: int  # aggregation block (dim_in > 1)
    w_start: int
    w_stop: int
    cg_start: int
    cg_stop: int


class _FastPlan:
    """Index tables of :meth:`Interaction.forward_fast`, derived from the e3nn instructions.

    Per edge, the messages of a group with ``dim_in > 1`` are laid out ``(width, slot, mul)`` (one
    aggregation block); a scalar group's scalar-output slots are blocks ``(mul,)`` and its vector-output
    slots are mixed into the linear's outputs. ``agg_mid``/``agg_scale`` give, for every aggregated message
    column, its column of e3nn's ``irreps_mid`` and the path's normalisation constant (scale zero for
    padding and for slots that an irrep of the group does not have). ``weight_perm`` maps the groups'
    ``(slot, mul)`` weights to the tensor product's flat weights. ``cg_matrix`` ``(dim_sh, cols)`` holds per
    group the Wigner-3j blocks laid out ``(width, slot, dim_in)`` (scalar groups: ``(cols of slot 0, ...)``).
    ``linear_blocks``: per degree ``l`` of ``irreps_mid``, the aggregated columns ``(2l+1, channels)``
    (the same channel order for every component) with the ``irreps_mid`` row and scale of each channel;
    ``out_cols[l]``: the linear's output columns ``(2l+1, outputs)``.
    """

    def __init__(self, layer: Interaction) -> None:
        tp = layer.tp
        irreps_in, irreps_sh, irreps_mid = tp.irreps_in1, tp.irreps_in2, tp.irreps_out
        in_slices, sh_slices, mid_slices = irreps_in.slices(), irreps_sh.slices(), irreps_mid.slices()
        irreps_lin = layer.linear.irreps_out
        self.mid_dim = irreps_mid.dim
        self.out_cols: dict[int, Tensor] = {}
        out_irreps = {l: [ir for mul, ir in irreps_lin if ir.l == l for _ in range(mul)] for l in {ir.l for _, ir in irreps_lin}}
        for l in sorted({ir.l for _, ir in irreps_lin}):
            starts = [sl.start + o * (2 * l + 1) for (mul, ir), sl in zip(irreps_lin, irreps_lin.slices()) if ir.l == l for o in range(mul)]
            self.out_cols[l] = torch.tensor([[st + k for st in starts] for k in range(2 * l + 1)], dtype=torch.long)
        offsets, off = [], 0
        for ins in tp.instructions:
            if ins.connection_mode != "uvu" or not ins.has_weight or irreps_sh[ins.i_in2].mul != 1:
                raise ValueError("forward_fast supports weighted uvu paths with single spherical harmonics only")
            offsets.append(off)
            off += ins.path_shape[0] * ins.path_shape[1]
        by_l: dict[int, list[int]] = {}
        for i, (_, ir) in enumerate(irreps_in):
            by_l.setdefault(ir.l, []).append(i)
        cg_blocks, weight_perm, agg_mid, agg_scale = [], [], [], []
        self.agg_widths: list[int] = []
        # slots mixed into the linear's outputs first: (l_out, irreps_mid rows, scales, output channels)
        self.mix_rows: list[tuple[int, Tensor, Tensor, Tensor]] = []
        self.groups: list[_Group] = []
        cg_col = w_col = hx_col = 0
        for l1, members in by_l.items():
            if any(in_slices[b].start != in_slices[a].stop for a, b in pairwise(members)):
                raise ValueError("forward_fast needs the irreps of one degree to be contiguous")
            slots: list[tuple[int, int]] = []  # (sh irrep, l_out)
            serve: dict[tuple[int, int], int] = {}  # (input irrep, slot) -> instruction
            for k, ins in enumerate(tp.instructions):
                if ins.i_in1 in members:
                    key = (ins.i_in2, irreps_mid[ins.i_out].ir.l)
                    if key not in slots:
                        slots.append(key)
                    serve[(ins.i_in1, slots.index(key))] = k
            units = [(i, u) for i in members for u in range(irreps_in[i].mul)]
            mul, dim_in = len(units), 2 * l1 + 1
            width = max(2 * lo + 1 for _, lo in slots)

            def mid_of(i: int, u: int, slot: int, kk: int, serve=serve, slots=slots) -> tuple[int, float]:
                """Column of irreps_mid and path constant of message (input irrep i, channel u, slot, kk)."""
                k = serve.get((i, slot))
                lo = slots[slot][1]
                if k is None or kk >= 2 * lo + 1:
                    return 0, 0.0
                ins = tp.instructions[k]
                return mid_slices[ins.i_out].start + u * (2 * lo + 1) + kk, ins.path_weight

            for slot in range(len(slots)):
                for i, u in units:
                    k = serve.get((i, slot))
                    weight_perm.append(offsets[k] + u if k is not None else 0)
            w3j = {
                slot: o3.wigner_3j(l1, irreps_sh[i2].ir.l, lo, dtype=torch.float64)  # (dim_in, 2 l2 + 1, 2 lo + 1)
                for slot, (i2, lo) in enumerate(slots)
            }
            grp_slots, agg = [], -1
            if dim_in == 1:
                cols = sum(2 * lo + 1 for _, lo in slots)
                cgb = torch.zeros(irreps_sh.dim, cols, dtype=torch.float64)
                c0 = 0
                for slot, (i2, lo) in enumerate(slots):
                    cgb[sh_slices[i2], c0 : c0 + 2 * lo + 1] = w3j[slot][0]
                    mids = [mid_of(i, u, slot, 0) for i, u in units]
                    mid = torch.tensor([m for m, _ in mids], dtype=torch.long)
                    scale = torch.tensor([c for _, c in mids], dtype=torch.float64)
                    if lo == 0:
                        if irreps_sh[i2].ir.l == 0:  # Y_0 = 1 ("component" normalisation): a constant
                            scale = scale * w3j[slot].reshape(())
                        target = ("const" if irreps_sh[i2].ir.l == 0 else "agg", len(self.agg_widths))
                        self.agg_widths.append(mul)
                        agg_mid.append(mid)
                        agg_scale.append(scale)
                    else:
                        # only outputs of the same irreps (parity) as the paths' get weights
                        irs = {irreps_mid[tp.instructions[serve[(i, slot)]].i_out].ir for i in members if (i, slot) in serve}
                        sel = [o for o, ir in enumerate(out_irreps[lo]) if ir in irs]
                        target = ("mix", len(self.mix_rows))
                        self.mix_rows.append((lo, mid, scale, torch.tensor(sel, dtype=torch.long)))
                    grp_slots.append((c0, c0 + 2 * lo + 1, target))
                    c0 += 2 * lo + 1
            else:
                cgb = torch.zeros(irreps_sh.dim, width, len(slots), dim_in, dtype=torch.float64)
                for slot, (i2, lo) in enumerate(slots):
                    cgb[sh_slices[i2], : 2 * lo + 1, slot, :] = w3j[slot].permute(1, 2, 0)
                cgb = cgb.reshape(irreps_sh.dim, -1)
                mids = [mid_of(i, u, slot, kk) for kk in range(width) for slot in range(len(slots)) for i, u in units]
                agg_mid.append(torch.tensor([m for m, _ in mids], dtype=torch.long))
                agg_scale.append(torch.tensor([c for _, c in mids], dtype=torch.float64))
                agg = len(self.agg_widths)
                self.agg_widths.append(width * len(slots) * mul)
            cg_blocks.append(cgb)
            self.groups.append(
                _Group(
                    x_start=in_slices[members[0]].start, x_stop=in_slices[members[-1]].stop,
                    hx_start=hx_col, hx_stop=hx_col + dim_in * mul, mul=mul, dim_in=dim_in,
                    num_slots=len(slots), width=width, slots=grp_slots, agg=agg,
                    w_start=w_col, w_stop=w_col + mul * len(slots),
                    cg_start=cg_col, cg_stop=cg_col + cgb.shape[1],
                )
            )
            hx_col += dim_in * mul
            w_col += mul * len(slots)
            cg_col += cgb.shape[1]
        self.cg_matrix = torch.cat(cg_blocks, dim=1)
        self.weight_perm = torch.tensor(weight_perm, dtype=torch.long)
        # per degree l of the aggregated columns: (2l+1, channels) columns, the k = 0 row of each channel
        mid = torch.cat(agg_mid).tolist()
        scale = torch.cat(agg_scale).tolist()
        mid_l = [irreps_mid[next(q for q, sl in enumerate(mid_slices) if sl.start <= m < sl.stop)].ir.l for m in mid]
        comp = [(m - mid_slices[next(q for q, sl in enumerate(mid_slices) if sl.start <= m < sl.stop)].start) % (2 * l + 1)
                for m, l in zip(mid, mid_l)]
        self.linear_blocks: list[tuple[int, Tensor, Tensor, Tensor]] = []
        for l in sorted(set(mid_l)):
            valid = [c for c in range(len(mid)) if scale[c] != 0.0 and mid_l[c] == l]
            rows = [c for c in valid if comp[c] == 0]
            if not rows:
                continue
            by_mid = {mid[c]: c for c in valid}
            cols = [[by_mid[mid[r] + k] for r in rows] for k in range(2 * l + 1)]
            self.linear_blocks.append(
                (l, torch.tensor(cols, dtype=torch.long).reshape(2 * l + 1, len(rows)),
                 torch.tensor([mid[r] for r in rows], dtype=torch.long),
                 torch.tensor([scale[r] for r in rows], dtype=torch.float64))
            )


@dataclass
class EdgeSet:
    """The edges of a batch as :meth:`Interaction.forward_fast` reads them.

    Attributes:
        src, dst: ``(E,)`` node indices (messages flow ``src -> dst``).
        sh: ``(E, dim_sh)`` spherical harmonics of the edge directions ("component" normalisation).
        emb: ``(E, edge_dim)`` invariant edge embeddings, or None when every layer gets its edge term.
        inv_deg: ``(N,)`` ``1 / max(1, in-degree)`` (mean aggregation).
        chunks: ``(start, stop)`` blocks of edges processed together.
        layer_terms: optional per-layer ``edge_term`` of :meth:`Interaction.forward_fast`.
    """

    src: Tensor
    dst: Tensor
    sh: Tensor
    emb: Tensor | None
    inv_deg: Tensor
    chunks: list
    layer_terms: list | None = None

    @staticmethod
    def build(src: Tensor, dst: Tensor, sh: Tensor, emb: Tensor | None, num_nodes: int, chunk: int = 2048) -> EdgeSet:
        deg = torch.bincount(dst, minlength=num_nodes).clamp_min(1).to(sh.dtype)
        e = src.numel()
        chunks = [(a, min(a + chunk, e)) for a in range(0, e, chunk)]
        return EdgeSet(src, dst, sh, emb, 1.0 / deg, chunks)


def interaction_stack(ns: int, nv: int, num_layers: int, irreps_sh: o3.Irreps, edge_dim: int) -> nn.ModuleList:
    """``num_layers`` :class:`Interaction` layers from ``ns x 0e`` node scalars to hidden irreps
    ``ns x 0e + nv x 1o + nv x 1e`` (the stack every molgen network uses)."""
    hidden = o3.Irreps(f"{ns}x0e + {nv}x1o + {nv}x1e")
    layers, irreps_in = [], o3.Irreps(f"{ns}x0e")
    for _ in range(num_layers):
        layers.append(Interaction(irreps_in, hidden, irreps_sh, edge_dim, ns))
        irreps_in = hidden
    return nn.ModuleList(layers)


def run_interactions(
    layers: nn.ModuleList, h: Tensor, src: Tensor, dst: Tensor, sh: Tensor, emb: Tensor, reference: bool = False
) -> Tensor:
    """Node features after every layer of ``layers`` on the edges ``src -> dst`` (spherical harmonics ``sh``,
    embeddings ``emb``): the e3nn reference path or the fast path (the same function)."""
    if reference:
        for layer in layers:
            h = layer(h, src, dst, sh, emb)
        return h
    edges = EdgeSet.build(src, dst, sh, emb, h.shape[0])
    for layer in layers:
        h = layer.forward_fast(h, edges)
    return h
