"""Closed-form results: phase diagrams, tight-frame polytopes, the one-hot limit, nonlinear compression.

- §2.5: the "toy model of the toy model" — candidate losses and phase boundaries for n=2, m=1 and n=3, m=2;
- §2.6.2 / §4.4: synthetic uniform polytopes (tight frames, D = d/k) and tegum products, with guide lines;
- §6.4: Chen et al.'s exact population loss in the one-hot (S → 1) limit and its k-gon critical points;
- §2.13: the compress/decompress scheme t = (⌊Zx⌋ + y)/Z of the nonlinear-compression appendix.

Everything is float64 and deterministic; nothing here samples. Only torch is needed (no scipy).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from enum import Enum
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

ArrayLike = float | Tensor


def _t(x: ArrayLike) -> Tensor:
    return torch.as_tensor(x, dtype=torch.float64)


# ---- §2.5 phase change: n = 2, m = 1 -----------------------------------------------------------------


class Phase2x1(str, Enum):
    """Outcome for the extra feature (importance r) of the n=2, m=1 model; the empirical classifier shares it.

    Integer code = position in `PHASES_2X1` (also `.code`).
    """

    NOT_LEARNED = "not learned"  # W = [1, 0]: the extra feature is ignored (W ⊥ (0, 1))
    SUPERPOSITION = "superposition"  # W = [1, −1]: antipodal pair (W ⊥ (1, 1))
    DEDICATED = "dedicated"  # W = [0, 1]: feature 1 dropped, the extra one gets the dimension (W ⊥ (1, 0))

    @property
    def code(self) -> int:
        return PHASES_2X1.index(self)


PHASES_2X1: tuple[Phase2x1, ...] = tuple(Phase2x1)

#: The direction each 2x1 solution leaves out of W's row space (its ignored direction, §2.5).
IGNORED_DIRECTION_2X1: dict[Phase2x1, tuple[float, ...]] = {
    Phase2x1.NOT_LEARNED: (0.0, 1.0),
    Phase2x1.SUPERPOSITION: (1.0, 1.0),
    Phase2x1.DEDICATED: (1.0, 0.0),
}

#: (r, s) where the three 2x1 phases meet.
TRIPLE_POINT_2X1 = (1.0, 4.0 / 7.0)


def _ignored_loss(s: Tensor) -> Tensor:
    # An ignored feature gets bias s/2 (its mean): (1−s)(s/2)² + s∫(x − s/2)² = s/3 − s²/4 (§2.5 [W]).
    return s / 3 - s**2 / 4


def losses_2x1(r: ArrayLike, s: ArrayLike) -> Float[Tensor, "phases ..."]:
    """Expected loss per sample of each candidate, stacked in PHASES_2X1 order (§2.5 [W]).

    s = density 1 − S of both features, r = importance of the extra feature (feature 1 has importance 1).
    The antipodal solution errs only when both are active (prob. s²), by (1 + r)·E[min(x₁, x₂)²] = (1 + r)/6.
    """
    r, s = torch.broadcast_tensors(_t(r), _t(s))
    return torch.stack([r * _ignored_loss(s), (1 + r) * s**2 / 6, _ignored_loss(s)])


def phase_2x1(r: ArrayLike, s: ArrayLike) -> Int[Tensor, "*grid"]:
    """Code (index into PHASES_2X1) of the lowest-loss candidate; ties go to the earlier phase."""
    return losses_2x1(r, s).argmin(0)


def boundary_2x1(r: ArrayLike) -> Tensor:
    """Superposition is optimal iff s < s*(r): 4r/(2+5r) for r ≤ 1, 4/(5+2r) for r ≥ 1 (§2.5 [D])."""
    r = _t(r)
    return torch.where(r <= 1, 4 * r / (2 + 5 * r), 4 / (5 + 2 * r))


# ---- §2.5 phase change: n = 3, m = 2 ----------------------------------------------------------------


class Phase3x2(str, Enum):
    """Candidates for n=3, m=2 with importances (1, 1, r), named by what happens (§2.5 [W]).

    Integer code = position in `PHASES_3X2` (also `.code`).
    """

    IGNORE_EXTRA = "extra not learned"  # W ⊥ (0, 0, 1)
    IGNORE_OTHER = "other dropped, extra dedicated"  # W ⊥ (1, 0, 0)
    EXTRA_ANTIPODAL = "extra antipodal"  # W ⊥ (0, 1, 1): extra antipodal with one other feature
    OTHERS_ANTIPODAL = "others antipodal, extra dedicated"  # W ⊥ (1, 1, 0)

    @property
    def code(self) -> int:
        return PHASES_3X2.index(self)


PHASES_3X2: tuple[Phase3x2, ...] = tuple(Phase3x2)

#: Ignored direction of each 3x2 solution (§2.5); equivalent up to swapping the two importance-1 features,
#: so an empirical classifier (smallest-eigenvalue direction of WᵀW, E3) should compare up to that swap.
IGNORED_DIRECTION_3X2: dict[Phase3x2, tuple[float, ...]] = {
    Phase3x2.IGNORE_EXTRA: (0.0, 0.0, 1.0),
    Phase3x2.IGNORE_OTHER: (1.0, 0.0, 0.0),
    Phase3x2.EXTRA_ANTIPODAL: (0.0, 1.0, 1.0),
    Phase3x2.OTHERS_ANTIPODAL: (1.0, 1.0, 0.0),
}


def losses_3x2(r: ArrayLike, s: ArrayLike) -> Float[Tensor, "phases ..."]:
    """Expected loss of each candidate, stacked in PHASES_3X2 order (§2.5 [W])."""
    r, s = torch.broadcast_tensors(_t(r), _t(s))
    return torch.stack([r * _ignored_loss(s), _ignored_loss(s), (1 + r) * s**2 / 6, s**2 / 3])


def phase_3x2(r: ArrayLike, s: ArrayLike) -> Int[Tensor, "*grid"]:
    """Code (index into PHASES_3X2) of the lowest-loss candidate; ties go to the earlier phase."""
    return losses_3x2(r, s).argmin(0)


def boundary_3x2(r: ArrayLike) -> Tensor:
    """Antipodal solutions win iff s < s*(r): 4r/(2+5r) for r < 1, 4/7 for r ≥ 1 (§2.5 [D])."""
    r = _t(r)
    return torch.where(r < 1, 4 * r / (2 + 5 * r), torch.full_like(r, 4 / 7))


def phase_grid(
    which: Literal["2x1", "3x2"] = "2x1",
    size: int = 200,
    r_range: tuple[float, float] = (0.01, 100.0),
    s_range: tuple[float, float] = (0.001, 1.0),
) -> tuple[Float[Tensor, " r"], Float[Tensor, " s"], Int[Tensor, "s r"]]:
    """Log-spaced theoretical phase diagram (E3): r values, s values, codes[s, r]."""
    r = torch.logspace(math.log10(r_range[0]), math.log10(r_range[1]), size, dtype=torch.float64)
    s = torch.logspace(math.log10(s_range[0]), math.log10(s_range[1]), size, dtype=torch.float64)
    fn = phase_2x1 if which == "2x1" else phase_3x2
    return r, s, fn(r[None, :], s[:, None])


# ---- §2.6.2 tight frames and polytopes ----------------------------------------------------------------


@dataclass(frozen=True)
class GuideLine:
    """A uniform polytope of `size` unit vectors spanning `dim` dimensions: each feature has D = dim/size."""

    dim: int
    size: int
    name: str

    @property
    def value(self) -> float:
        return self.dim / self.size


#: Guide lines for the D_i scatter (§2.6.2): the paper's named fractions plus the notebook's extra lines.
POLYTOPE_FRACTIONS: tuple[GuideLine, ...] = (
    GuideLine(1, 1, "dedicated"),
    GuideLine(5, 6, "5-simplex"),
    GuideLine(4, 5, "4-simplex"),
    GuideLine(3, 4, "tetrahedron"),
    GuideLine(2, 3, "triangle"),
    GuideLine(1, 2, "antipodal pair"),
    GuideLine(2, 5, "pentagon"),
    GuideLine(3, 8, "square antiprism"),
    GuideLine(2, 6, "hexagon"),
    GuideLine(2, 7, "heptagon"),
    GuideLine(3, 12, "icosahedron"),
    GuideLine(3, 20, "dodecahedron"),
)

#: The fractions the paper itself names as sticky (§2.6.2; E5 uses these plus 1 and 1/3).
PAPER_FRACTIONS: tuple[float, ...] = (1.0, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8, 1 / 3)


def tight_frame_dimensionality(dim: int, size: int) -> float:
    """D = d/k for each of k unit vectors forming a tight frame in d dimensions (§2.6.2 [D])."""
    return dim / size


def _unit_columns(V: Tensor) -> Float[Tensor, "1 dim points"]:
    V = V.to(torch.float64)
    return (V / V.norm(dim=0, keepdim=True))[None]


def antipodal_pair() -> Float[Tensor, "1 1 2"]:
    """Two features sharing one dimension with opposite signs (D = 1/2 each)."""
    return torch.tensor([[[1.0, -1.0]]], dtype=torch.float64)


def regular_polygon(k: int, phase: float = 0.0) -> Float[Tensor, "1 2 k"]:
    """k ≥ 3 unit vectors at angles phase + 2πj/k (D = 2/k)."""
    if k < 3:
        raise ValueError(f"a regular polygon needs k >= 3 vertices, got {k}; use antipodal_pair() for k = 2.")
    a = phase + 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    return torch.stack([a.cos(), a.sin()])[None]


def simplex(d: int) -> Float[Tensor, "1 d d_plus_1"]:
    """Regular simplex: d + 1 unit vectors in d dims, pairwise cosine −1/d (D = d/(d+1)).

    Built as in §2.6.3: the basis vectors of R^{d+1} projected onto the complement of (1, …, 1).
    """
    n = d + 1
    P = torch.eye(n, dtype=torch.float64) - 1.0 / n  # projector onto (1,…,1)^⊥
    U, _, _ = torch.linalg.svd(P)
    return _unit_columns(U[:, :d].T @ P)


def tetrahedron() -> Float[Tensor, "1 3 4"]:
    """Regular tetrahedron (D = 3/4)."""
    return simplex(3)


def octahedron() -> Float[Tensor, "1 3 6"]:
    """±e₁, ±e₂, ±e₃: the tegum product of three antipodal pairs (D = 1/2)."""
    eye = torch.eye(3, dtype=torch.float64)
    return torch.stack([eye, -eye], dim=-1).reshape(3, 6)[None]


def cube() -> Float[Tensor, "1 3 8"]:
    """The eight vertices (±1, ±1, ±1)/√3 (a tight frame: D = 3/8)."""
    return _unit_columns(torch.tensor(list(itertools.product((1.0, -1.0), repeat=3))).T)


def square_antiprism(height: float = 1 / math.sqrt(2)) -> Float[Tensor, "1 3 8"]:
    """Unit vectors along (cos(jπ/4), sin(jπ/4), ±height), sign alternating; a tight frame (D = 3/8) at
    height 1/√2, the default (§2.6.2)."""
    j = torch.arange(8, dtype=torch.float64)
    a = j * math.pi / 4
    return _unit_columns(torch.stack([a.cos(), a.sin(), height * (-1.0) ** j]))


def icosahedron() -> Float[Tensor, "1 3 12"]:
    """The 12 vertices of the regular icosahedron (D = 3/12)."""
    phi = (1 + math.sqrt(5)) / 2
    pts = []
    for s1, s2 in itertools.product((1.0, -1.0), repeat=2):
        for perm in range(3):
            v = [0.0, s1, s2 * phi]
            pts.append(v[-perm:] + v[:-perm] if perm else v)
    return _unit_columns(torch.tensor(pts).T)


def dodecahedron() -> Float[Tensor, "1 3 20"]:
    """The 20 vertices of the regular dodecahedron (D = 3/20)."""
    phi = (1 + math.sqrt(5)) / 2
    pts = [list(v) for v in itertools.product((1.0, -1.0), repeat=3)]
    for s1, s2 in itertools.product((1.0, -1.0), repeat=2):
        for perm in range(3):
            v = [0.0, s1 / phi, s2 * phi]
            pts.append(v[-perm:] + v[:-perm] if perm else v)
    return _unit_columns(torch.tensor(pts).T)


def tegum(*polytopes: Tensor) -> Float[Tensor, "1 dim points"]:
    """Tegum product: the factors embedded in mutually orthogonal subspaces (block-diagonal W, §2.6.2)."""
    blocks = [p[0] if p.ndim == 3 else p for p in polytopes]
    return torch.block_diag(*[b.to(torch.float64) for b in blocks])[None]


def triangular_bipyramid() -> Float[Tensor, "1 3 5"]:
    """Triangle ⊕ antipodal pair in 3-D: D = (2/3, 2/3, 2/3, 1/2, 1/2) (§2.6.2)."""
    return tegum(regular_polygon(3), antipodal_pair())


def pentagonal_bipyramid() -> Float[Tensor, "1 3 7"]:
    """Pentagon ⊕ antipodal pair in 3-D: D = 5 × 2/5 and 2 × 1/2 (§2.6.2)."""
    return tegum(regular_polygon(5), antipodal_pair())


# ---- §6.4 one-hot limit (Chen et al.) -----------------------------------------------------------------


def _square_integral(alpha: Tensor, beta: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """∫_lo^hi (αt + β)² dt, exactly."""
    return alpha**2 * (hi**3 - lo**3) / 3 + alpha * beta * (hi**2 - lo**2) + beta**2 * (hi - lo)


def _active_interval(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """The sub-interval of t ∈ [0, 1] where a·t + b > 0 (empty: lo = hi)."""
    safe = torch.where(a == 0, torch.ones_like(a), a)
    root = (-b / safe).clamp(0, 1)
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    lo = torch.where(a > 0, root, zero)
    hi = torch.where(a < 0, root, one)
    flat_on = b > 0  # a = 0: on everywhere iff b > 0
    lo = torch.where(a == 0, zero, lo)
    hi = torch.where(a == 0, torch.where(flat_on, one, zero), hi)
    return lo, hi


def one_hot_loss(
    W: Float[Tensor, "*instances hidden features"],
    b: Float[Tensor, "*instances features"],
    importance: Float[Tensor, "*instances features"] | None = None,
) -> Float[Tensor, "*instances"]:
    """Exact population loss of ReLU(WᵀWx + b) when exactly one feature is active (§6.4).

    x = t·e_i with i uniform over the c features and t ~ U[0, 1]; loss Σ_j I_j (x_j − x'_j)² (the paper's
    sum over outputs; divide by c for the notebook's mean). With G = WᵀW, output j is ReLU(G_ji t + b_j);
    each term is the integral over t of a squared ReLU of an affine function, done piecewise-analytically.
    Chen et al.'s H = 3c·L. Works for any hidden size; differentiable (used by the k-gon solver).
    Accepts W [hidden, features] (returns a scalar) or a batch [instances, hidden, features].
    """
    W, b = W.to(torch.float64), b.to(torch.float64)
    c = W.shape[-1]
    imp = torch.ones_like(b) if importance is None else importance.to(torch.float64).expand_as(b)
    G = W.transpose(-1, -2) @ W  # G[..., j, i]: weight of input i on output j
    bj = b[..., :, None].expand_as(G)
    lo, hi = _active_interval(G, bj)
    # Output j ≠ i (target 0): ∫ ReLU(G_ji t + b_j)².  Output i (target t): ∫ t² off the active
    # interval plus ∫ ((1 − G_ii) t − b_i)² on it.
    wrong = _square_integral(G, bj, lo, hi)
    own_on = _square_integral(1 - G, -bj, lo, hi) - (hi**3 - lo**3) / 3
    eye = torch.eye(c, dtype=torch.bool)
    per = torch.where(eye, 1.0 / 3 + own_on, wrong)  # [..., j (output), i (active)]
    return (imp[..., :, None] * per).sum((-2, -1)) / c


def kgon_weights(
    k: int, c: int, length: float, bias: float, positive_bias_dead: int = 0, dead_bias: float = 0.0,
    switched_off: int = 0,
) -> tuple[Float[Tensor, "1 2 c"], Float[Tensor, "1 c"]]:
    """The k-gon critical point's parameters (§6.4), for notebooks and tests.

    Features 0..k−1 sit at angles 2πj/k with norm `length` and bias `bias`; the other c − k are dead (zero
    weight): the first `positive_bias_dead` of them get bias 1/(2c) (Chen et al.'s k⁺ variants), the rest
    `dead_bias` (any value ≤ 0 is a critical point; a strictly negative one keeps the point away from the ReLU
    kink, which `critical_points` needs for its Hessian). `switched_off` vertices (0 … φ−1, adjacent; a 4-gon's
    k^{σ+,φ−} variants, paper-spec §7.2 D14) keep their weight but get bias −l² + `dead_bias` (≤ −l²), so their
    own output never fires. Returns W [1, 2, c] and b [1, c], float64.
    """
    if not 0 <= positive_bias_dead <= c - k:
        raise ValueError(f"positive_bias_dead must be in [0, c − k] = [0, {c - k}], got {positive_bias_dead}.")
    if not 0 <= switched_off <= k:
        raise ValueError(f"switched_off must be in [0, k] = [0, {k}], got {switched_off}.")
    W = torch.zeros(1, 2, c, dtype=torch.float64)
    b = torch.full((1, c), float(dead_bias), dtype=torch.float64)
    if k == 1:
        W[0, 0, 0] = length
    elif k == 2:
        W[0, 0, :2] = torch.tensor([length, -length], dtype=torch.float64)
    else:
        W[0, :, :k] = length * regular_polygon(k)[0]
    b[0, :k] = bias
    b[0, :switched_off] = -(length**2) + min(float(dead_bias), 0.0)
    b[0, k : k + positive_bias_dead] = 1.0 / (2 * c)
    return W, b


@dataclass(frozen=True)
class KGon:
    """A k-gon critical point of the one-hot loss (§6.4): norm l*, bias b*, and h_k = 3·Σ_live E[loss]."""

    k: int
    length: float
    bias: float
    h: float

    def loss(self, c: int, positive_bias_dead: int = 0, switched_off: int = 0) -> float:
        """L(k^{σ+,φ−}, c) = (h_k + c − k + φ − 3σ/(4c))/(3c) with σ = `positive_bias_dead`, φ = `switched_off`.

        Each dead feature contributes exactly 1 to H = 3c·L (its ∫t² = 1/3 per unit of 1/c), less 3/(4c) when its
        bias is 1/(2c) (the optimal constant output: L falls by exactly 1/(4c²), D14). A switched-off 4-gon vertex
        (bias ≤ −l²) is dead the same way and changes nothing else — its neighbours are orthogonal to it and its
        opposite antipodal, so no other output fires — while a live 4-gon vertex contributes h_4 = 0; for k ≥ 5
        (b* < 0, neighbours at acute angles) switching a vertex off is not a critical point, so φ needs k = 4.
        """
        if c < self.k + positive_bias_dead:
            raise ValueError(f"c = {c} has no room for a {self.k}-gon plus {positive_bias_dead} biased features.")
        if switched_off and (self.k != 4 or not 0 <= switched_off <= 4):
            raise ValueError(f"only a 4-gon's vertices can be switched off (0 … 4), got {switched_off} of a "
                             f"{self.k}-gon.")
        return (self.h + c - self.k + switched_off - positive_bias_dead * 3 / (4 * c)) / (3 * c)


def _kgon_terms(k: int, params: Float[Tensor, "*batch 2"]) -> tuple[Tensor, ...]:
    # Offsets d = 0 … k−1 of the circulant k-gon Gram matrix G_ji = l² cos(2π(j − i)/k): a_d, b, the active
    # interval of a_d·t + b on [0, 1] and the target e_d (1 for the active feature's own output, d = 0).
    cos = torch.cos(2 * math.pi * torch.arange(k, dtype=torch.float64) / k)
    a = params[..., 0, None] ** 2 * cos
    bias = params[..., 1, None].expand_as(a)
    lo, hi = _active_interval(a, bias)
    e = torch.zeros(k, dtype=torch.float64)
    e[0] = 1.0
    return cos, a, bias, lo, hi, e


def _kgon_h(k: int, params: Float[Tensor, "*batch 2"]) -> Float[Tensor, "*batch"]:
    """h_k = 3c·L at c = k (no dead features), as a differentiable function of params = (l, b).

    The k-gon's Gram matrix is circulant, so every active feature sees the same k outputs: h_k = 3k·Σ_d of the
    per-output loss at offset d — the integrals of `one_hot_loss` in O(k) instead of O(k²).
    """
    _, a, bias, lo, hi, e = _kgon_terms(k, params)
    # ∫ (ReLU(a t + b) − e t)² dt = e/3 + ∫_active ((a − e) t + b)² − e t² dt.
    per = _square_integral(a - e, bias, lo, hi) - e * (hi**3 - lo**3) / 3 + e / 3
    return 3 * k * per.sum(-1)


def _kgon_h_derivatives(k: int, params: Float[Tensor, "batch 2"]) -> tuple[Tensor, Tensor, Tensor]:
    """h_k, its gradient [batch, 2] and Hessian [batch, 2, 2] in (l, b), in closed form.

    Each term ∫ (ReLU(a t + b) − e t)² dt has ∂_a = 2∫_A t((a − e)t + b), ∂_b = 2∫_A ((a − e)t + b) over the
    active interval A (no boundary terms: the integrand vanishes where a t + b = 0); the second derivatives are
    2∫_A (t², t, 1) plus, for the own output (e = 1), a boundary term where A ends at the root r = −b/a inside
    (0, 1); then the chain rule through a = l²·cos.
    """
    cos, a, bias, lo, hi, e = _kgon_terms(k, params)
    m0, m1, m2 = (hi - lo), (hi**2 - lo**2) / 2, (hi**3 - lo**3) / 3  # ∫_A 1, t, t²
    fa, fb = 2 * ((a - e) * m2 + bias * m1), 2 * ((a - e) * m1 + bias * m0)
    safe = torch.where(a == 0, torch.ones_like(a), a)
    r = -bias / safe
    # d/dθ ∫_lo^hi ψ = ∫ ∂ψ + ψ(hi)·∂hi − ψ(lo)·∂lo with ψ_a(r) = −2e r², ψ_b(r) = −2e r, ∂r/∂(a, b) = −(r, 1)/a.
    side = torch.where(a > 0, -1.0, 1.0) * ((a != 0) & (r > 0) & (r < 1)) * e / safe
    faa, fab, fbb = 2 * m2 + 2 * side * r**3, 2 * m1 + 2 * side * r**2, 2 * m0 + 2 * side * r
    da = 2 * params[:, 0, None] * cos  # ∂a/∂l
    h = 3 * k * (_square_integral(a - e, bias, lo, hi) - e * m2 + e / 3).sum(-1)
    g = 3 * k * torch.stack([(fa * da).sum(-1), fb.sum(-1)], -1)
    hll = (faa * da**2 + fa * 2 * cos).sum(-1)
    hlb = (fab * da).sum(-1)
    hbb = fbb.sum(-1)
    H = 3 * k * torch.stack([torch.stack([hll, hlb], -1), torch.stack([hlb, hbb], -1)], -2)
    return h, g, H


def _newton(f, df, p: Float[Tensor, "batch 2"], iterations: int = 100) -> Float[Tensor, "batch 2"]:
    """Damped Newton descent on a 2-parameter piecewise polynomial, all starts at once.

    The Hessian is shifted to positive definite where it is not (H + μI, μ = 1e-3·|λ_max| − λ_min:
    Levenberg–Marquardt, which follows curved valleys far faster than a gradient step); backtracking over step
    sizes 2^−m (every candidate evaluated in one batch) keeps each start's first non-increasing one; a start with
    none stays put; `df` gives (f, gradient, Hessian). Converges to machine precision on the smooth pieces
    (h_k is piecewise polynomial).
    """
    ts = 2.0 ** -torch.arange(30, dtype=torch.float64)
    rows = torch.arange(p.shape[0])
    eye = torch.eye(2, dtype=torch.float64)
    for _ in range(iterations):
        h, g, H = df(p)
        ev = torch.linalg.eigvalsh(H)
        shift = (1e-3 * ev.abs().max(-1).values - ev[:, 0]).clamp(min=0)
        step = torch.linalg.solve(H + shift[:, None, None] * eye, g[..., None])[..., 0]
        cand = p[None] - ts[:, None, None] * step[None]  # [steps, batch, 2]
        # Non-increasing up to rounding of h (near a minimum the decrease |g|²/λ falls below one ulp of h).
        ok = f(cand) <= h[None] + 1e-14 * (1 + h.abs())[None]
        moved = ok.any(0)
        p = torch.where(moved[:, None], cand[ok.to(torch.uint8).argmax(0), rows], p)
        if not bool((moved & (g.norm(dim=-1) > 1e-12)).any()):  # every start converged or stuck
            break
    return p


#: The (l, b) window `kgon_solutions` seeds from: every solution of k = 3 … 16 lies well inside it.
KGON_GRID = ((0.2, 5.0, 97), (-8.0, 1.0, 181))


@functools.cache
def kgon_solutions(k: int) -> tuple[KGon, ...]:
    """Every isolated local minimum (l > 0) of h_k(l, b) for the regular k-gon (k ≥ 3), lowest h first (§6.4).

    Each strict local minimum of h_k on a grid over `KGON_GRID` (l ∈ [0.2, 5], b ∈ [−8, 1]) seeds a batched damped
    Newton refinement with closed-form derivatives; refined points with zero gradient and a positive definite
    Hessian are kept, closer than 1e-6 merged. This finds one solution per k for 3 ≤ k ≤ 13 (tested); a denser
    search for all critical points of h_k (saddles included: Newton on the gradient from 2,400 starts over
    l ∈ [0.2, 6], b ∈ [−12, 2], run for k = 5, 8, 12) finds nothing else outside the flat dead region: one
    solution per k (the paper reports two for the 12-gon; see docs/slt.md, D14). Cached per k.
    """
    if k < 3:
        raise ValueError(f"a k-gon needs k >= 3, got {k}.")
    (l0, l1, nl), (b0, b1, nb) = KGON_GRID
    ls = torch.linspace(l0, l1, nl, dtype=torch.float64)
    bs = torch.linspace(b0, b1, nb, dtype=torch.float64)
    h = _kgon_h(k, torch.cartesian_prod(ls, bs)).reshape(nl, nb)
    pad = torch.nn.functional.pad(h[None, None], (1, 1, 1, 1), value=float("inf"))[0, 0]
    neigh = torch.stack([pad[1 + di : 1 + di + nl, 1 + dj : 1 + dj + nb]
                         for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj])
    seeds = torch.nonzero(h < neigh.min(0).values)  # strict grid minima (flat dead regions excluded)
    f = functools.partial(_kgon_h, k)
    df = functools.partial(_kgon_h_derivatives, k)
    p = _newton(f, df, torch.stack([ls[seeds[:, 0]], bs[seeds[:, 1]]], -1))
    _, g, H = df(p)
    ev = torch.linalg.eigvalsh(H)
    keep = (g.norm(dim=-1) < 1e-9) & (ev[:, 0] > 1e-9) & (p[:, 0] > 0.05)
    found: list[Tensor] = []
    for q in p[keep]:
        if all(float((q - r).norm()) > 1e-6 for r in found):
            found.append(q)
    return tuple(sorted((KGon(k, float(q[0]), float(q[1]), float(f(q))) for q in found), key=lambda s: s.h))


def solve_kgon(k: int) -> KGon:
    """The lowest-loss solution of `kgon_solutions(k)`: the regular k-gon's optimal (l*, b*) and h_k (§6.4)."""
    sols = kgon_solutions(k)
    if not sols:
        raise ValueError(f"no isolated critical point found for the {k}-gon.")
    return sols[0]


_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def family_name(k: int, plus: int = 0, minus: int = 0) -> str:
    """The paper's k^{σ+,φ−} written inline (D14): k, then for σ > 0 "⁺" and for φ > 0 "⁻", each sign preceded by
    its count in superscript digits when the count exceeds 1. "4" (σ = φ = 0), "5⁺" (σ = 1), "4²⁺" (σ = 2),
    "4⁻" (φ = 1), "4²⁺³⁻" (σ = 2, φ = 3)."""

    def part(count: int, sign: str) -> str:
        return "" if count == 0 else (str(count).translate(_SUPERSCRIPT) if count > 1 else "") + sign

    return f"{k}{part(plus, '⁺')}{part(minus, '⁻')}"


@dataclass(frozen=True)
class CriticalPoint:
    """One critical point of the one-hot population loss with c features in 2 dimensions (§6.4): the family
    k^{σ+,φ−} of paper-spec §7.2 D14.

    A regular k-gon (`solution` indexes `kgon_solutions(k)`) with `plus` = σ of its c − k dead features at bias
    1/(2c) (Chen et al.'s k⁺; the other dead features at a negative bias) and, for 4-gons only, `minus` = φ of its
    vertices switched off by a bias ≤ −l². `llc` is the learning coefficient of a minimally singular local
    minimum, (3c − zero modes)/2 from the exact Hessian, when the zero modes are exactly the expected flat
    directions (one rotation, three per dead feature with negative bias) and the point is away from every ReLU
    kink; else None (saddle, kink or further degeneracy: unknown here).
    """

    k: int
    c: int
    plus: int
    solution: int
    length: float
    bias: float
    loss: float
    llc: float | None
    negative_modes: int
    zero_modes: int
    minus: int = 0

    @property
    def variant(self) -> str:
        return "k" if self.plus == 0 else "k+"

    @property
    def name(self) -> str:
        """The family in the paper's notation, e.g. "4²⁺⁻" (`family_name`)."""
        return family_name(self.k, self.plus, self.minus)

    @property
    def label(self) -> str:
        sol = f" (solution {self.solution + 1})" if self.solution else ""
        return f"{self.name}-gon{sol}"

    def weights(self) -> tuple[Float[Tensor, "1 2 c"], Float[Tensor, "1 c"]]:
        """W [1, 2, c], b [1, c] of this point (dead negative-bias features at −1/(2c), switched-off vertices at
        −l² − 1/(2c))."""
        return kgon_weights(self.k, self.c, self.length, self.bias, self.plus, dead_bias=-1 / (2 * self.c),
                            switched_off=self.minus)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "k": self.k, "variant": self.variant, "plus": self.plus, "minus": self.minus,
                "solution": self.solution, "length": self.length, "bias": self.bias, "loss": self.loss,
                "llc": self.llc, "negative_modes": self.negative_modes, "zero_modes": self.zero_modes}


def _smooth(W: Tensor, b: Tensor, tol: float = 1e-9) -> bool:
    # Away from every ReLU kink: no affine G_ji·t + b_j vanishes at t = 0 or t = 1, or is identically 0,
    # unless it is a dead feature's row (W_j = 0, b_j < 0), which is strictly off.
    G = W.T @ W
    bj = b[:, None].expand_as(G)
    live = (G.abs() > tol) | (bj.abs() > tol)
    return bool(live.all() and ((bj.abs() > tol) & ((G + bj).abs() > tol)).all())


def hessian_modes(W: Float[Tensor, "2 c"], b: Float[Tensor, " c"], rel_tol: float = 1e-7) -> tuple[int, int, Tensor]:
    """(negative, zero, eigenvalues) of the exact one-hot loss Hessian in the 3c parameters (W, b)."""
    c = W.shape[-1]

    def f(theta: Tensor) -> Tensor:
        return one_hot_loss(theta[: 2 * c].reshape(2, c), theta[2 * c :])

    theta = torch.cat([W.reshape(-1), b]).double()
    ev = torch.linalg.eigvalsh(torch.autograd.functional.hessian(f, theta))  # unvectorised: 2x faster here
    tol = rel_tol * float(ev.abs().max())
    return int((ev < -tol).sum()), int((ev.abs() <= tol).sum()), ev


def critical_points(c: int, k: int | None = None) -> list[CriticalPoint]:
    """Every k-gon critical-point family k^{σ+,φ−} of the one-hot loss with c features (paper-spec §7.2 D14), by
    loss (ties: larger k first).

    Enumeration: 4 ≤ k ≤ c (or the given k), each solution of `kgon_solutions(k)`; σ = 0 … c − k dead features at
    bias 1/(2c) (the rest at a negative bias); for the 4-gon also φ = 0 … 4 vertices switched off by a bias ≤ −l²
    (φ = 4: all four off, the model's output is 0 — still a critical point, the square's weights idle). At c = 6
    that is 1 (6) + 2 (5, 5⁺) + 3 × 5 (4^{σ+,φ−}, σ ≤ 2, φ ≤ 4) = 18 families, the count Chen et al. give for
    c = 6 (as transcribed in paper-spec D14). Reading of the count, ours: k ≥ 4 as in the paper's tables (a 3-gon or
    antipodal pair would be critical too, with h = 0, but the paper does not list them), and φ up to 4 — the only
    enumeration of this notation over k ≥ 4 that gives 18 (φ ≤ 3 gives 15). Only the 4-gon switches vertices
    off: its live vertices have b* = 0 and pairwise G_ij ≤ 0, so a vertex at b ≤ −l² leaves every other output
    unchanged; a k ≥ 5 vertex has acute neighbours and b* < 0, and switching it off moves the others' optimum.
    The (negative, zero) Hessian modes are at the dead biases −1/(2c) and switched-off biases −l² − 1/(2c).
    """
    if c < 4:
        raise ValueError(f"c must be >= 4 (k-gons with 4 <= k <= c), got {c}.")
    ks = range(4, c + 1) if k is None else [k]
    if k is not None and not 4 <= k <= c:
        raise ValueError(f"k must be in [4, c] = [4, {c}], got {k}.")
    out = []
    for kk in ks:
        for s, sol in enumerate(kgon_solutions(kk)):
            for minus in range(5 if kk == 4 else 1):
                for plus in range(c - kk + 1):
                    W, b = kgon_weights(kk, c, sol.length, sol.bias, plus, dead_bias=-1 / (2 * c), switched_off=minus)
                    neg, zero, _ = hessian_modes(W[0], b[0])
                    expected = 1 + 3 * (c - kk - plus)
                    smooth = minus == 0 and neg == 0 and zero == expected and _smooth(W[0], b[0])
                    llc = (3 * c - zero) / 2 if smooth else None
                    out.append(CriticalPoint(kk, c, plus, s, sol.length, sol.bias, sol.loss(c, plus, minus), llc, neg,
                                             zero, minus))
    return sorted(out, key=lambda p: (p.loss, -p.k, p.plus, p.minus))


#: The published second 12-gon solution (l, b) that paper-spec §7.2 D14 withdraws as a check.
PUBLISHED_SECOND_12GON = (1.24975, -0.85483)


def kgon_gradient(k: int, length: float, bias: float) -> tuple[float, float, float]:
    """(h_k, ∂h_k/∂l, ∂h_k/∂b) of the regular k-gon at (l, b), closed form (H = 3c·L at c = k). At a critical
    point both derivatives vanish; D14's discrepancy row shows them at `PUBLISHED_SECOND_12GON`."""
    h, g, _ = _kgon_h_derivatives(k, torch.tensor([[length, bias]], dtype=torch.float64))
    return float(h[0]), float(g[0, 0]), float(g[0, 1])


# ---- §2.13 nonlinear compression ----------------------------------------------------------------------

#: Summed MSE of the two linear baselines on dense U[0,1]² (keep one value, or keep the average) (§2.13 [D]).
LINEAR_COMPRESSION_MSE = 1.0 / 12.0


def _ramp_floor(u: Tensor, Z: int, width: float) -> Tensor:
    """⌊u⌋ on [0, Z) with each jump at j = 1..Z−1 replaced by a linear ramp of `width`, centred on j."""
    j = torch.arange(1, Z, dtype=torch.float64)
    if width <= 0:
        return (u[..., None] >= j).to(torch.float64).sum(-1)
    return ((u[..., None] - j) / width + 0.5).clamp(0, 1).sum(-1)


def compression_mse(Z: int, eps: float, grid: int = 1200) -> float:
    """Summed MSE of t = (⌊Zx⌋ + y)/Z on dense (x, y) ~ U[0,1]², by midpoint integration on grid² points.

    Our concrete reading of §2.13: every floor (in the encoder ⌊Zx⌋ and the decoder ⌊Zt⌋) is replaced by
    a linear ramp of width ε in units of x and t (so ε ≤ 1/Z), centred on the jump; decoding uses the bin
    middle, x' = (⌊Zt⌋ + 1/2)/Z, and y' = Zt − ⌊Zt⌋. As ε → 0 the MSE tends to 1/(12Z²) (x is quantised,
    y exact); the grid is a multiple of Z so that limit is reproduced to O(1/grid²).
    """
    if not 0 <= eps <= 1 / Z:
        raise ValueError(f"eps must be in [0, 1/Z] = [0, {1 / Z:.4g}], got {eps}.")
    pts = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid
    x, y = pts[:, None], pts[None, :]
    t = (_ramp_floor(Z * x, Z, Z * eps) + y) / Z
    q = _ramp_floor(Z * t, Z, Z * eps)
    x_hat, y_hat = (q + 0.5) / Z, Z * t - q
    return float(((x - x_hat) ** 2 + (y - y_hat) ** 2).mean())


def linear_compression_mse(kind: Literal["keep-one", "average"], grid: int = 1200) -> float:
    """Numerical check of the linear baselines (both 1/12): keep x and set y' = 1/2, or x' = y' = (x+y)/2."""
    pts = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid
    x, y = pts[:, None], pts[None, :]
    if kind == "keep-one":
        err = (y - 0.5) ** 2 + 0 * x
    else:
        m = (x + y) / 2
        err = (x - m) ** 2 + (y - m) ** 2
    return float(err.mean())
