"""Metrics computed from a model's weights alone (paper-spec §3), batched over instances.

Every function takes the on-disk layout W [instances, hidden, features] (column W[k, :, i] is feature
i's direction in instance k), or a single model W [hidden, features], as a torch tensor or a numpy
array; a single model gets its results without the instance dimension (one list of components from
`polytopes`, a [features] tensor from `feature_dimensionality`, …). Computations run in float64,
because the known-answer checks (tight-frame dimensionalities, Σ D_i ≤ m) are exact to 1e-9, and
results are returned as float64 torch tensors.

Groups:
- feature geometry: norms, Gram matrix, superposition/polysemanticity, ‖W‖_F², D*, D_i (§2.3, §2.6);
- polytopes: connected components of the interference graph, labelled by size/rank/D (§2.6.2, E5);
- m = 2 angles (E1, E7);
- neuron-level measures for privileged bases and the abs model (§2.9, §3 proposal, §5 footnote 15);
- the analytic adversarial attack (§2.8, E13);
- datapoint dimensionality and weight/bias norms (follow-up §6.1).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

#: A feature whose norm is below this is treated as exactly zero: its D_i is 0 and it has no direction.
#: Absolute, since trained features are O(1); D_i is otherwise exact in float64 down to far smaller norms.
DEAD_NORM = 1e-6

#: The notebook's guard in Ŵ_i = W_i / (‖W_i‖ + 1e-5), kept for the superposition bar colour so that our
#: values match its plots (paper-spec §3).
NOTEBOOK_EPS = 1e-5

#: Features with ‖W_i‖ above this count as learned (the checklist's ‖W_i‖ > 0.5, e.g. E2, E7, E14).
LEARNED_NORM = 0.5

#: Two learned features interact (share an edge of the geometry graph) when |W_i·W_j| exceeds this (E5).
EDGE_THRESHOLD = 0.1

#: A component is a named polytope only if every D_i is within this of dim/size (E5's tolerance).
D_TOLERANCE = 0.03

#: Singular values below this fraction of the largest do not count towards a component's dimension:
#: trained polytopes are slightly bent out of their plane, but by far less than 10%.
RANK_TOLERANCE = 0.1

#: A 2-D component is a *regular* k-gon only if its angular gaps are all within this of 360°/k (E1: ±3°).
ANGLE_TOLERANCE_DEG = 5.0


def _f64(x: Tensor) -> Tensor:
    return torch.as_tensor(x).detach().to(torch.float64)


F = TypeVar("F", bound=Callable[..., Any])


def _first(out: Any) -> Any:
    """Drop the instance dimension of a result computed for a batch of one."""
    if isinstance(out, Tensor | list):
        return out[0]
    if isinstance(out, tuple):
        return tuple(_first(o) for o in out)
    if dataclasses.is_dataclass(out):
        return dataclasses.replace(out, **{f.name: _first(getattr(out, f.name)) for f in dataclasses.fields(out)})
    return out


def one_or_batch(**single_ndim: int) -> Callable[[F], F]:
    """Let a batched metric take one model too, and numpy arrays as well as tensors.

    `single_ndim` gives, per array argument, its number of dimensions for a single model (W: 2). When
    the first of them has that many dimensions, every such argument gets an instance dimension of 1 and
    the result loses it again.
    """

    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind(*args, **kwargs)
            single = None
            for name, nd in single_ndim.items():
                value = bound.arguments.get(name)
                if value is None:
                    continue
                t = value if isinstance(value, Tensor) else torch.as_tensor(value)
                if single is None:
                    if t.ndim < nd:
                        raise ValueError(
                            f"{fn.__name__}: {name} must have {nd} dimensions (one model) or {nd + 1} (a batch of "
                            f"instances), got shape {tuple(t.shape)}."
                        )
                    single = t.ndim == nd
                bound.arguments[name] = t[None] if single and t.ndim == nd else t
            out = fn(*bound.args, **bound.kwargs)
            return _first(out) if single else out

        return inner  # type: ignore[return-value]

    return wrap


# ---- feature geometry (§2.3, §2.6) -----------------------------------------------------------------


@one_or_batch(W=2)
def feature_norms(W: Float[Tensor, "instances hidden features"]) -> Float[Tensor, "instances features"]:
    """‖W_i‖ per feature: ≈ 1 represented, ≈ 0 not (§2.3)."""
    return _f64(W).norm(dim=-2)


@one_or_batch(W=2)
def gram(W: Float[Tensor, "instances hidden features"]) -> Float[Tensor, "instances features features"]:
    """WᵀW, the only meaningful object of the ReLU-output model (rotation symmetry, §1.2)."""
    W = _f64(W)
    return W.transpose(-1, -2) @ W


@one_or_batch(W=2)
def superposition(W: Float[Tensor, "instances hidden features"]) -> Float[Tensor, "instances features"]:
    """Σ_{j≠i} (Ŵ_i·W_j)² per feature: the paper's bar colour (§2.3, §3).

    0 means orthogonal to every other feature; ≥ 1 means the others can activate W_i as strongly as
    feature i itself. Ŵ_i uses the notebook's ‖W_i‖ + 1e-5, so a dead feature scores ≈ 0.
    """
    W = _f64(W)
    unit = W / (W.norm(dim=-2, keepdim=True) + NOTEBOOK_EPS)
    proj = unit.transpose(-1, -2) @ W  # [i, j] = Ŵ_i·W_j
    return (proj**2).sum(-1) - torch.diagonal(proj, dim1=-2, dim2=-1) ** 2


@one_or_batch(W=2)
def polysemanticity(W: Float[Tensor, "instances hidden features"]) -> Float[Tensor, "instances features"]:
    """sqrt(Σ_{j≠i} (Ŵ_i·W_j)²): the notebook's variant of the bar colour (§3 [NB])."""
    return superposition(W).clamp_min(0).sqrt()


@one_or_batch(W=2)
def learned_features(W: Float[Tensor, "instances hidden features"]) -> Float[Tensor, " instances"]:
    """‖W‖_F², ≈ the number of learned features since ‖W_i‖² is ≈ 0 or 1 (§2.6.1)."""
    return (_f64(W) ** 2).sum((-2, -1))


@one_or_batch(W=2)
def dimensions_per_feature(W: Float[Tensor, "instances hidden features"]) -> Float[Tensor, " instances"]:
    """D* = m / ‖W‖_F², sticky at 1 and 1/2 (§2.6.1); its inverse is 'features per dimension' (§2.8)."""
    return W.shape[-2] / learned_features(W)


def _dimensionality(G: Float[Tensor, "instances items items"]) -> Float[Tensor, "instances items"]:
    # D_i = ‖W_i‖⁴ / Σ_j (W_i·W_j)² = G_ii² / Σ_j G_ij², equal to ‖W_i‖² / Σ_j (Ŵ_i·W_j)² (§2.6.2).
    # Written this way the denominator is a float sum of non-negative terms including the numerator,
    # so D_i ≤ 1 holds exactly in floating point, and Σ D_i ≤ rank ≤ m follows from the §3 proof.
    diag = torch.diagonal(G, dim1=-2, dim2=-1)
    denom = (G**2).sum(-1)
    dead = diag < DEAD_NORM**2
    return torch.where(dead, torch.zeros_like(diag), diag**2 / torch.where(dead, torch.ones_like(denom), denom))


@one_or_batch(W=2)
def feature_dimensionality(W: Float[Tensor, "instances hidden features"]) -> Float[Tensor, "instances features"]:
    """D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)² (j over all features), 0 where ‖W_i‖ < DEAD_NORM (§2.6.2).

    Antipodal pair 1/2, dedicated 1, k-point tight frame in d dims d/k; always Σ_i D_i ≤ m (§3).
    Identical to Scherlis et al.'s capacity C_i (§6.3, F4).
    """
    return _dimensionality(gram(W))


@one_or_batch(h=2)
def datapoint_dimensionality(h: Float[Tensor, "instances batch hidden"]) -> Float[Tensor, "instances batch"]:
    """D_{X_i} = ‖h_i‖² / Σ_j (ĥ_i·h_j)² over a batch of hidden vectors h_i = W X_i (follow-up §6.1).

    A T-gon of points in m = 2 gives 2/T. The denominator is h_iᵀ M h_i with M = Σ_j h_j h_jᵀ (hidden × hidden),
    so a dataset of 10⁴ points needs no 10⁴ × 10⁴ Gram matrix; 0 where ‖h_i‖ < DEAD_NORM.
    """
    h = _f64(h)
    M = h.transpose(-1, -2) @ h
    norm2 = (h**2).sum(-1)
    denom = torch.einsum("ibh,ihk,ibk->ib", h, M, h)
    dead = norm2 < DEAD_NORM**2
    # Rounding can put the quadratic form a hair below ‖h_i‖⁴ (the j = i term); D_X ≤ 1 holds exactly.
    return torch.where(dead, torch.zeros_like(norm2), (norm2**2 / torch.where(dead, torch.ones_like(denom), denom))
                       .clamp_max(1.0))


def weight_norm(W: Float[Tensor, "instances hidden features"]) -> Float[Tensor, " instances"]:
    """‖W‖_F, plotted against dataset size in §6.1 (≈ √5 ≈ 2.2 for the generalising pentagon)."""
    return learned_features(W).sqrt()


def bias_norm(b: Float[Tensor, "instances features"]) -> Float[Tensor, " instances"]:
    """‖b‖₂ per instance (§6.1: peaks with ‖W‖_F at small datasets)."""
    return _f64(b).norm(dim=-1)


# ---- polytopes (§2.6.2, E5, E6) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """One connected component of the geometry graph on learned features (a tegum factor)."""

    features: tuple[int, ...]
    """Feature indices, ascending."""
    size: int
    """k, the number of features."""
    dim: int
    """d, the numerical rank of the features' span (singular values > RANK_TOLERANCE · largest)."""
    D: tuple[float, ...]
    """Each feature's dimensionality D_i (computed on the whole model, as in the paper's scatter)."""
    label: str
    """Polytope name, or 'other' when the D_i are not all d/k within D_TOLERANCE."""


_POLYGON_NAMES = {3: "triangle", 4: "square", 5: "pentagon", 6: "hexagon", 7: "heptagon", 8: "octagon"}
_SOLID_NAMES = {(4, 3): "tetrahedron", (6, 3): "octahedron", (12, 3): "icosahedron", (20, 3): "dodecahedron"}


def _connected_components(adjacent: Tensor) -> list[list[int]]:
    n = adjacent.shape[0]
    seen: set[int] = set()
    out = []
    for start in range(n):
        if start in seen:
            continue
        stack, comp = [start], []
        seen.add(start)
        while stack:
            i = stack.pop()
            comp.append(i)
            for j in torch.nonzero(adjacent[i]).flatten().tolist():
                if j not in seen:
                    seen.add(j)
                    stack.append(j)
        out.append(sorted(comp))
    return out


def _angular_gaps_2d(vectors: Float[Tensor, "two points"]) -> Tensor:
    """Gaps (degrees) between consecutive directions of 2-D vectors, in angular order."""
    ang = torch.atan2(vectors[1], vectors[0]).sort().values
    return torch.rad2deg(torch.diff(ang, append=ang[:1] + 2 * math.pi))


def _label(cols: Tensor, dims: Tensor, rank: int, d_tol: float) -> str:
    """Name of the component whose columns are `cols` [hidden, k] with dimensionalities `dims`."""
    k = cols.shape[1]
    if not bool(((dims - rank / k).abs() <= d_tol).all()):
        return "other"
    if k == 1:
        return "dedicated"
    cos = gram(cols[None])[0] / (cols.norm(dim=0)[:, None] * cols.norm(dim=0)[None, :])
    if k == 2:
        return "antipodal pair" if rank == 1 and cos[0, 1] < 0 else "other"
    if rank == 2:
        # Equal D only makes a tight frame; a named k-gon must also be regular (equal angular gaps).
        _, _, vh = torch.linalg.svd(cols.T, full_matrices=False)
        gaps = _angular_gaps_2d(vh[:2] @ cols)
        if bool(((gaps - 360.0 / k).abs() <= ANGLE_TOLERANCE_DEG).all()):
            return _POLYGON_NAMES.get(k, f"{k}-gon")
        return f"{k}-point tight frame in 2-D"
    if k == 8 and rank == 3:
        # Both have D = 3/8; a cube is four antipodal pairs, the square antiprism has no antipodes.
        has_antipode = (cos.min(dim=1).values < -0.95).all()
        return "cube" if bool(has_antipode) else "square antiprism"
    if (k, rank) in _SOLID_NAMES:
        return _SOLID_NAMES[(k, rank)]
    if k == rank + 1:
        return f"{rank}-simplex"
    return f"{k}-point tight frame in {rank}-D"


@one_or_batch(W=2)
def polytopes(
    W: Float[Tensor, "instances hidden features"],
    threshold: float = EDGE_THRESHOLD,
    norm_threshold: float = LEARNED_NORM,
    d_tolerance: float = D_TOLERANCE,
) -> list[list[Component]]:
    """Per instance, the connected components of the geometry graph, largest first (§2.6.2, E5).

    Nodes are the learned features (‖W_i‖ > norm_threshold); an edge joins i and j when
    |W_i·W_j| > threshold. Tegum products therefore split into their factors: an octahedron appears as
    three antipodal pairs and a triangular bipyramid as a triangle plus an antipodal pair. Each component
    is labelled from its size k, rank d and D values (see `Component`).
    """
    W = _f64(W)
    G = gram(W)
    D = _dimensionality(G)
    norms = torch.diagonal(G, dim1=-2, dim2=-1).sqrt()
    result = []
    for inst in range(W.shape[0]):
        learned = torch.nonzero(norms[inst] > norm_threshold).flatten()
        adjacent = G[inst][learned][:, learned].abs() > threshold
        comps = []
        for local in _connected_components(adjacent):
            feats = learned[local]
            cols = W[inst][:, feats]
            sv = torch.linalg.svdvals(cols)
            rank = int((sv > RANK_TOLERANCE * sv[0]).sum())
            dims = D[inst][feats]
            label = _label(cols, dims, rank, d_tolerance)
            comps.append(Component(tuple(feats.tolist()), len(local), rank, tuple(dims.tolist()), label))
        comps.sort(key=lambda c: (-c.size, c.features))
        result.append(comps)
    return result


def describe_polytopes(components: list[Component]) -> str:
    """One instance's components as text, e.g. 'pentagon' or '2 × antipodal pair + dedicated'.

    Larger components first; 'none' when nothing is learned.
    """
    if not components:
        return "none"
    counts = Counter(c.label for c in components)
    order = sorted(counts, key=lambda lab: -max(c.size for c in components if c.label == lab))
    return " + ".join(lab if counts[lab] == 1 else f"{counts[lab]} × {lab}" for lab in order)


# ---- m = 2 angles (E1, E7) -------------------------------------------------------------------------


@one_or_batch(W=2)
def feature_angles(W: Float[Tensor, "instances two features"]) -> Float[Tensor, "instances features"]:
    """Direction of each feature in degrees, atan2(W[1], W[0]) ∈ (−180, 180] (m = 2 models only)."""
    if W.shape[-2] != 2:
        raise ValueError(f"feature angles need m = 2 hidden dimensions, got {W.shape[-2]}.")
    W = _f64(W)
    return torch.rad2deg(torch.atan2(W[:, 1], W[:, 0]))


@one_or_batch(W=2)
def angular_gaps(
    W: Float[Tensor, "instances two features"], norm_threshold: float = LEARNED_NORM, sort: bool = True
) -> list[Float[Tensor, " learned"]]:
    """Per instance, the angular gaps (degrees) between consecutive learned features' directions.

    They sum to 360; a regular pentagon gives five gaps of 72 (E1 accepts 72 ± 3). With sort=False the
    gaps are in counter-clockwise order starting after the feature with the smallest angle.
    """
    angles = feature_angles(W)
    norms = feature_norms(W)
    out = []
    for inst in range(W.shape[0]):
        a = angles[inst][norms[inst] > norm_threshold].sort().values
        gaps = torch.diff(a, append=a[:1] + 360.0) if len(a) else a
        out.append(gaps.sort().values if sort else gaps)
    return out


@one_or_batch(W=2)
def neighbour_gaps(
    W: Float[Tensor, "instances two features"], feature: int, norm_threshold: float = LEARNED_NORM
) -> Float[Tensor, "instances 2"]:
    """The two angular gaps (degrees; clockwise, counter-clockwise) around one learned feature (E7).

    NaN where that feature is not learned or is the only learned feature.
    """
    angles = feature_angles(W)
    norms = feature_norms(W)
    out = torch.full((W.shape[0], 2), math.nan, dtype=torch.float64)
    for inst in range(W.shape[0]):
        learned = norms[inst] > norm_threshold
        if not bool(learned[feature]) or int(learned.sum()) < 2:
            continue
        rel = (angles[inst][learned] - angles[inst][feature]) % 360.0
        rel = rel[rel > 0] if bool((rel > 0).any()) else rel
        out[inst, 0] = 360.0 - rel.max()
        out[inst, 1] = rel.min()
    return out


# ---- neuron level: privileged basis and abs model (§2.9, §3, §5) ----------------------------------------

#: Neurons whose largest |weight| is below this are dead and carry no feature.
DEAD_NEURON = 1e-3


@one_or_batch(W=2)
def neuron_feature_counts(
    W: Float[Tensor, "instances neurons features"], rel_threshold: float = 0.1
) -> Int[Tensor, "instances neurons"]:
    """Features per neuron with |W_kf| > rel_threshold · max_f |W_kf| (§3 operational proposal).

    Invariant to the footnote-15 rescaling (a positive per-neuron scale), so W1 may be passed raw.
    Dead neurons (max |W_kf| < DEAD_NEURON) count 0.
    """
    A = _f64(W).abs()
    top = A.max(-1, keepdim=True).values
    counts = (A > rel_threshold * top).sum(-1)
    return torch.where(top[..., 0] < DEAD_NEURON, torch.zeros_like(counts), counts)


@one_or_batch(W=2)
def polysemantic_neurons(
    W: Float[Tensor, "instances neurons features"], rel_threshold: float = 0.1
) -> Bool[Tensor, "instances neurons"]:
    """Neuron k is polysemantic if ≥ 2 features have |W_kf| > rel_threshold · max_f |W_kf| (§3)."""
    return neuron_feature_counts(W, rel_threshold) >= 2


@one_or_batch(W=2)
def monosemantic_neurons(
    W: Float[Tensor, "instances neurons features"], rel_threshold: float = 0.1
) -> Bool[Tensor, "instances neurons"]:
    """Exactly one feature above rel_threshold · the neuron's largest |weight| (§3)."""
    return neuron_feature_counts(W, rel_threshold) == 1


@one_or_batch(W=2)
def neurons_per_feature(
    W: Float[Tensor, "instances neurons features"], rel_threshold: float = 0.2
) -> Int[Tensor, "instances features"]:
    """Neurons with a positive weight above rel_threshold · the feature's largest positive weight (A5).

    A feature with no positive weight above DEAD_NEURON uses 0 neurons.
    """
    P = _f64(W).clamp_min(0)
    top = P.max(-2, keepdim=True).values
    counts = (P > rel_threshold * top).sum(-2)
    return torch.where(top[..., 0, :] < DEAD_NEURON, torch.zeros_like(counts), counts)


@one_or_batch(W=2)
def features_per_neuron(
    W: Float[Tensor, "instances neurons features"], rel_threshold: float = 0.2
) -> Int[Tensor, "instances neurons"]:
    """Features with a positive weight above rel_threshold · the neuron's largest positive weight (A5)."""
    return neurons_per_feature(_f64(W).transpose(-1, -2), rel_threshold)


@one_or_batch(W=2)
def features_in_superposition(
    W: Float[Tensor, "instances neurons features"], threshold: float = 0.1
) -> Bool[Tensor, "instances features"]:
    """Σ_{j≠i} (Ŵ_i·W_j)² > threshold with W the neuron-by-feature matrix (§3 proposal)."""
    return superposition(W) > threshold


@one_or_batch(W1=2, W2=2)
def abs_rescale(
    W1: Float[Tensor, "instances hidden features"], W2: Float[Tensor, "instances features hidden"]
) -> tuple[Float[Tensor, "instances hidden features"], Float[Tensor, "instances features hidden"]]:
    """Footnote 15: scale hidden unit k so its largest-magnitude W1 weight is ±1, and W2's column k inversely.

    The model's function is unchanged because ReLU(αz) = αReLU(z) for α > 0. Dead units are left as is.
    """
    W1, W2 = _f64(W1), _f64(W2)
    top = W1.abs().max(-1).values  # [instances, hidden]
    scale = torch.where(top < DEAD_NEURON, torch.ones_like(top), 1.0 / top.clamp_min(DEAD_NEURON))
    return W1 * scale[..., None], W2 / scale[:, None, :]


# ---- adversarial robustness (§2.8, E13) -------------------------------------------------------------


@one_or_batch(W=2)
def attack_directions(W: Float[Tensor, "instances hidden features"]) -> Float[Tensor, "instances attacks features"]:
    """Row i is the unit L2 attack on feature i, (WᵀW)_i / ‖(WᵀW)_i‖ (§2.8); zero for a dead feature.

    It maximises the change of output i's pre-activation, (WᵀW δ)_i, over ‖δ‖ ≤ 1.
    """
    G = gram(W)
    n = G.norm(dim=-1, keepdim=True)
    return torch.where(n < DEAD_NORM**2, torch.zeros_like(G), G / n.clamp_min(DEAD_NORM**2))


@dataclass(frozen=True)
class AttackLosses:
    """One model's losses (paper loss Σ_i I_i (x_i − x'_i)², batch mean) under each analytic attack."""

    clean: float
    per_attack: Float[Tensor, " attacks"]
    """Attack i (on feature i) applied to every input."""
    per_sample_worst: float
    """Each input under the attack that harms it most: an adversarial example per input."""


def attack_losses(
    W: Float[Tensor, "hidden features"],
    b: Float[Tensor, " features"],
    x: Float[Tensor, "batch features"],
    radius: float,
    importance: Float[Tensor, " features"] | None = None,
    model: Literal["relu-output", "linear"] = "relu-output",
    chunk: int = 2048,
    block: int = 32,
) -> AttackLosses:
    """Clean and attacked losses of one model for every attack x → x + λ·u_i (§2.8); the target stays x.

    The model is linear before its output nonlinearity, so attacked pre-activations are the clean ones plus a
    per-attack shift λ·u_i WᵀW: one broadcast add per (attack, input), no matrix product. Chunked over inputs
    and attacks so that memory stays bounded for any n and batch."""
    W, b, x = _f64(W), _f64(b), _f64(x)
    imp = torch.ones_like(b) if importance is None else _f64(importance)
    G = gram(W[None])[0]
    shift = radius * attack_directions(W[None])[0] @ G  # [attacks, features]; G is symmetric
    act = (lambda t: t) if model == "linear" else torch.relu
    clean = torch.zeros((), dtype=torch.float64)
    worst = torch.zeros((), dtype=torch.float64)
    per_attack = torch.zeros(shift.shape[0], dtype=torch.float64)
    for s in range(0, x.shape[0], chunk):
        xc = x[s : s + chunk]
        pre = xc @ G + b  # row-vector x @ G = (Gx)ᵀ
        clean += (imp * (xc - act(pre)) ** 2).sum()
        most = torch.full((xc.shape[0],), -torch.inf, dtype=torch.float64)
        for a in range(0, shift.shape[0], block):
            err = (imp * (xc - act(pre + shift[a : a + block, None])) ** 2).sum(-1)  # [block, chunk]
            most = torch.maximum(most, err.max(0).values)
            per_attack[a : a + block] += err.sum(-1)
        worst += most.sum()
    N = x.shape[0]
    return AttackLosses(float(clean / N), per_attack / N, float(worst / N))


@dataclass(frozen=True)
class AttackResult:
    """Clean and worst-case attacked loss per instance (paper loss: Σ_i I_i (x_i − x'_i)², batch mean)."""

    clean: Float[Tensor, " instances"]
    attacked: Float[Tensor, " instances"]
    feature: Int[Tensor, " instances"]
    """The attacked feature i that maximised the batch-mean loss."""
    radius: Float[Tensor, " instances"]
    """λ, the attack's L2 norm."""


@one_or_batch(W=2, b=1, x=2, importance=1)
def adversarial_losses(
    W: Float[Tensor, "instances hidden features"],
    b: Float[Tensor, "instances features"],
    x: Float[Tensor, "instances batch features"],
    importance: Float[Tensor, "instances features"] | None = None,
    radius: float | Tensor | None = None,
    radius_fraction: float = 0.1,
    model: Literal["relu-output", "linear"] = "relu-output",
) -> AttackResult:
    """Clean loss and the loss under the most harmful analytic attack x → x + λ·u_i (§2.8), per instance.

    λ = radius_fraction × mean ‖x‖ over the batch (the paper's 0.1), unless `radius` is given. The target
    stays the clean x, so an unperturbed dedicated model loses exactly λ² per attack. The attacked
    feature is chosen per instance to maximise the batch-mean loss (`attack_losses`).
    """
    W, b, x = _f64(W), _f64(b), _f64(x)
    imp = torch.ones_like(b) if importance is None else _f64(importance).expand_as(b)
    if radius is None:
        lam = radius_fraction * x.norm(dim=-1).mean(-1)
    else:
        lam = torch.as_tensor(radius, dtype=torch.float64).expand(W.shape[0]).clone()
    each = [attack_losses(W[k], b[k], x[k], float(lam[k]), imp[k], model) for k in range(W.shape[0])]
    attacked = torch.stack([r.per_attack.max() for r in each])
    feature = torch.stack([r.per_attack.argmax() for r in each])
    return AttackResult(torch.tensor([r.clean for r in each], dtype=torch.float64), attacked, feature, lam)


def vulnerability(
    clean: Tensor | float, attacked: Tensor | float, ref_clean: Tensor | float, ref_attacked: Tensor | float
) -> Tensor:
    """(L' − L) / (L'_0 − L_0): attack damage relative to a non-superposition reference model (§2.8)."""
    return (torch.as_tensor(attacked) - torch.as_tensor(clean)) / (
        torch.as_tensor(ref_attacked) - torch.as_tensor(ref_clean)
    )
