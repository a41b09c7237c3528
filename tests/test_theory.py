"""Known-answer tests for tmslab.theory (paper-spec §2.5, §2.6.2, §2.13, §6.4; checklist E3, E6, E19, F5)."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from tmslab import theory as T

R_VALUES = [0.1, 0.3, 0.5, 1.0, 2.0, 3.0, 10.0]


def _antipodal_boundary(losses, r: float, antipodal: list[int]) -> float:
    """The density s where the best antipodal candidate stops beating the rest (bisection on the losses)."""

    def margin(s: float) -> float:
        L = losses(r, s)
        rest = [i for i in range(L.shape[0]) if i not in antipodal]
        return float(L[antipodal].min() - L[rest].min())

    # Locate the sign change on a fine grid first, then bisect to machine precision.
    grid = torch.linspace(1e-4, 1.0, 2001, dtype=torch.float64).tolist()
    signs = [margin(s) < 0 for s in grid]
    i = signs.index(False)
    lo, hi = grid[i - 1], grid[i]
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if margin(mid) < 0 else (lo, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize("r", R_VALUES)
def test_2x1_boundary_matches_formula(r):
    s_num = _antipodal_boundary(T.losses_2x1, r, antipodal=[T.Phase2x1.SUPERPOSITION.code])
    assert s_num == pytest.approx(float(T.boundary_2x1(r)), abs=1e-3)
    expected = 4 * r / (2 + 5 * r) if r <= 1 else 4 / (5 + 2 * r)
    assert float(T.boundary_2x1(r)) == pytest.approx(expected, abs=1e-12)
    # Just below the boundary superposition wins; just above, the r < 1 / r > 1 side's phase.
    s = float(T.boundary_2x1(r))
    assert int(T.phase_2x1(r, 0.99 * s)) == T.Phase2x1.SUPERPOSITION.code
    above = T.Phase2x1.NOT_LEARNED if r < 1 else T.Phase2x1.DEDICATED
    if r != 1:
        assert int(T.phase_2x1(r, 1.01 * s)) == above.code


def test_2x1_known_points_and_triple_point():
    assert float(T.boundary_2x1(0.1)) == pytest.approx(0.16, abs=1e-12)
    assert float(T.boundary_2x1(10.0)) == pytest.approx(0.16, abs=1e-12)
    r, s = T.TRIPLE_POINT_2X1
    L = T.losses_2x1(r, s)
    assert torch.allclose(L, L[0].expand(3), atol=1e-15)  # all three candidates tie
    assert s == pytest.approx(4 / 7)


def test_2x1_symmetric_in_log_r():
    r = torch.logspace(-2, 2, 201, dtype=torch.float64)
    assert torch.allclose(T.boundary_2x1(r), T.boundary_2x1(1 / r), atol=1e-12)
    # r → 1/r swaps 'not learned' and 'dedicated' (the roles of the two features), keeping superposition.
    rr, s, codes = T.phase_grid("2x1", size=201)
    flipped = codes.flip(-1)
    swap = torch.tensor([T.Phase2x1.DEDICATED.code, T.Phase2x1.SUPERPOSITION.code, T.Phase2x1.NOT_LEARNED.code])
    mapped = swap[codes]
    # Exclude cells on a boundary, where floating-point ties may break either way.
    L = T.losses_2x1(rr[None, :], s[:, None]).sort(0).values
    clear = (L[1] - L[0]) > 1e-12 * L[1].abs()
    clear &= clear.flip(-1)
    assert torch.equal(mapped[clear], flipped[clear])
    assert set(codes.unique().tolist()) == {0, 1, 2}


def test_enums_are_stable():
    assert [p.value for p in T.PHASES_2X1] == ["not learned", "superposition", "dedicated"]
    assert [p.code for p in T.Phase2x1] == [0, 1, 2]
    assert [p.code for p in T.Phase3x2] == [0, 1, 2, 3]
    assert T.Phase2x1("superposition") is T.Phase2x1.SUPERPOSITION
    assert set(T.IGNORED_DIRECTION_3X2) == set(T.Phase3x2)


@pytest.mark.parametrize("r", R_VALUES)
def test_3x2_boundary_matches_formula(r):
    antipodal = [T.Phase3x2.EXTRA_ANTIPODAL.code, T.Phase3x2.OTHERS_ANTIPODAL.code]
    s_num = _antipodal_boundary(T.losses_3x2, r, antipodal=antipodal)
    expected = 4 * r / (2 + 5 * r) if r < 1 else 4 / 7
    assert s_num == pytest.approx(expected, abs=1e-3)
    assert float(T.boundary_3x2(r)) == pytest.approx(expected, abs=1e-12)
    below = T.Phase3x2.EXTRA_ANTIPODAL if r < 1 else T.Phase3x2.OTHERS_ANTIPODAL
    above = T.Phase3x2.IGNORE_EXTRA if r < 1 else T.Phase3x2.IGNORE_OTHER
    if r != 1:
        assert int(T.phase_3x2(r, 0.99 * expected)) == below.code
        assert int(T.phase_3x2(r, 1.01 * expected)) == above.code


def test_3x2_grid_r_above_one_boundary_independent_of_r():
    r, s, codes = T.phase_grid("3x2", size=200)
    for j in torch.nonzero(r > 1.05).flatten().tolist():
        anti = codes[:, j] == T.Phase3x2.OTHERS_ANTIPODAL.code
        assert anti.any()
        assert float(s[anti].max()) < 4 / 7 <= float(s[~anti].min())


# ---- tight frames -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: T.regular_polygon(3),
        lambda: T.regular_polygon(7),
        T.tetrahedron,
        lambda: T.simplex(5),
        T.octahedron,
        T.cube,
        T.square_antiprism,
        T.icosahedron,
        T.dodecahedron,
    ],
)
def test_constructors_are_unit_tight_frames(make):
    W = make()[0]
    d, k = W.shape
    assert torch.allclose(W.norm(dim=0), torch.ones(k, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(W @ W.T, (k / d) * torch.eye(d, dtype=torch.float64), atol=1e-12)
    assert T.tight_frame_dimensionality(d, k) == d / k


def test_simplex_and_antiprism_geometry():
    S = T.simplex(4)[0]
    cos = S.T @ S
    assert torch.allclose(cos[~torch.eye(5, dtype=torch.bool)], torch.full((20,), -0.25, dtype=torch.float64))
    off = T.square_antiprism(height=0.3)[0]  # not a tight frame away from 1/√2
    assert not torch.allclose(off @ off.T, (8 / 3) * torch.eye(3, dtype=torch.float64), atol=1e-3)
    with pytest.raises(ValueError):
        T.regular_polygon(2)


def test_guide_lines():
    values = {g.name: g.value for g in T.POLYTOPE_FRACTIONS}
    assert values["tetrahedron"] == 3 / 4 and values["pentagon"] == 2 / 5 and values["square antiprism"] == 3 / 8
    assert {2 / 3, 1 / 2, 1 / 3}.issubset(set(values.values()))
    assert list(T.PAPER_FRACTIONS) == [1.0, 0.75, 2 / 3, 0.5, 0.4, 0.375, 1 / 3]


# ---- one-hot limit (§6.4, F5) --------------------------------------------------------------------------


def _monte_carlo(W, b, n, seed):
    g = torch.Generator().manual_seed(seed)
    c = W.shape[-1]
    idx = torch.randint(c, (n,), generator=g)
    t = torch.rand(n, generator=g, dtype=torch.float64)
    x = torch.zeros(n, c, dtype=torch.float64)
    x[torch.arange(n), idx] = t
    out = torch.relu(x @ (W.T @ W) + b)
    per = ((x - out) ** 2).sum(-1)
    return per.mean().item(), per.std().item() / math.sqrt(n)


@pytest.mark.parametrize("seed", range(6))
def test_one_hot_loss_matches_monte_carlo(seed):
    g = torch.Generator().manual_seed(100 + seed)
    c = 3 + seed
    W = torch.randn(2, c, generator=g, dtype=torch.float64) * 0.9
    b = torch.randn(c, generator=g, dtype=torch.float64) * 0.5  # both signs: all ReLU regimes occur
    if seed % 2:
        W[:, 0] = 0  # a dead feature (with whatever bias)
    exact = T.one_hot_loss(W, b).item()
    mc, se = _monte_carlo(W, b, 200_000, seed)
    assert abs(exact - mc) < 4 * se, (exact, mc, se)


def test_one_hot_loss_batched_and_importance():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(4, 2, 5, generator=g, dtype=torch.float64)
    b = torch.randn(4, 5, generator=g, dtype=torch.float64)
    batched = T.one_hot_loss(W, b)
    assert batched.shape == (4,)
    assert torch.allclose(batched, torch.stack([T.one_hot_loss(W[k], b[k]) for k in range(4)]))
    # Importance weights output j's error; uniform importance 2 doubles the loss.
    assert torch.allclose(T.one_hot_loss(W, b, 2 * torch.ones(5, dtype=torch.float64)), 2 * batched)
    # Zero model: each feature contributes E[t²] = 1/3, so H = 3c·L = c.
    assert T.one_hot_loss(torch.zeros(2, 5), torch.zeros(5)).item() == pytest.approx(1 / 3)


def test_kgon_published_values():
    k4, k5 = T.solve_kgon(4), T.solve_kgon(5)
    assert (k4.length, k4.bias, k4.h) == pytest.approx((1.0, 0.0, 0.0), abs=1e-6)
    assert k5.length == pytest.approx(1.17046, abs=1e-5)
    assert k5.bias == pytest.approx(-0.28230, abs=1e-5)
    assert k5.h == pytest.approx(0.23738, abs=1e-5)
    assert k4.loss(4) == pytest.approx(0.0, abs=1e-9)
    assert k5.loss(5) == pytest.approx(0.01583, abs=1e-5)
    assert k4.loss(5) == pytest.approx(0.06667, abs=1e-5)
    assert k4.loss(5, positive_bias_dead=1) == pytest.approx(0.05667, abs=1e-5)


@pytest.mark.parametrize(("k", "c", "plus"), [(4, 5, 0), (4, 5, 1), (5, 5, 0), (5, 6, 1), (6, 6, 0), (7, 8, 0)])
def test_kgon_loss_equals_closed_form_of_its_weights(k, c, plus):
    sol = T.solve_kgon(k)
    W, b = T.kgon_weights(k, c, sol.length, sol.bias, positive_bias_dead=plus)
    assert T.one_hot_loss(W, b).item() == pytest.approx(sol.loss(c, plus), abs=1e-12)


@pytest.mark.parametrize("k", [5, 6, 7, 8])
def test_kgon_is_a_critical_point_of_the_full_loss(k):
    """The symmetric solve only optimises (l, b); symmetry makes it critical in all 3k parameters."""
    sol = T.solve_kgon(k)
    W, b = T.kgon_weights(k, k, sol.length, sol.bias)
    W.requires_grad_(True)
    b.requires_grad_(True)
    T.one_hot_loss(W, b).sum().backward()
    assert W.grad.abs().max().item() < 1e-9 and b.grad.abs().max().item() < 1e-9


@pytest.mark.parametrize("k", [3, 4, 5, 8, 12])
def test_kgon_closed_form_derivatives_match_autograd(k):
    """Fast path ≡ reference: the circulant h_k equals 3k·one_hot_loss of the k-gon's weights, and its closed-form
    gradient and Hessian (with the own output's boundary term) equal autograd's, on and off the ReLU pieces."""
    g = torch.Generator().manual_seed(k)
    p = torch.rand(20, 2, generator=g, dtype=torch.float64) * torch.tensor([3.0, 4.0], dtype=torch.float64)
    p += torch.tensor([0.2, -3.5], dtype=torch.float64)
    h, grad, hess = T._kgon_h_derivatives(k, p)
    f = functools.partial(T._kgon_h, k)
    for i in range(len(p)):
        W, b = T.kgon_weights(k, k, float(p[i, 0]), float(p[i, 1]))
        assert float(h[i]) == pytest.approx(3 * k * T.one_hot_loss(W, b).item(), abs=1e-10)
        torch.testing.assert_close(grad[i], torch.autograd.functional.jacobian(f, p[i]), atol=1e-9, rtol=1e-9)
        torch.testing.assert_close(hess[i], torch.autograd.functional.hessian(f, p[i]), atol=1e-8, rtol=1e-9)


def test_kgon_solutions_one_per_k():
    """One isolated minimum per k = 3 … 13 (the paper reports a second 12-gon solution: not a critical point of
    h_12 in l ∈ [0.2, 5], b ∈ [−8, 1]; see README), each with zero gradient and a positive definite Hessian."""
    for k in range(3, 14):
        (sol,) = T.kgon_solutions(k)
        _, grad, hess = T._kgon_h_derivatives(k, torch.tensor([[sol.length, sol.bias]], dtype=torch.float64))
        assert float(grad.norm()) < 1e-9 and float(torch.linalg.eigvalsh(hess[0])[0]) > 0


# Published values (paper-spec §6.4 for k = 4, 5; Chen et al. 2023, Table A.1 for c = 6 as transcribed in public
# third-party code — the paper's own table could not be read here, so these rows are second-hand).
PUBLISHED = [  # (k, c, plus, l*, b*, L(k, c), λ or None)
    (4, 4, 0, 1.0, 0.0, 0.0, None),
    (5, 5, 0, 1.17046, -0.28230, 0.01583, None),
    (4, 5, 0, 1.0, 0.0, 0.06667, None),
    (4, 5, 1, 1.0, 0.0, 0.05667, None),
    (5, 6, 0, 1.17046, -0.28230, 0.06874, 7.0),
    (5, 6, 1, 1.17046, -0.28230, None, 8.5),
    (6, 6, 0, 1.32053, -0.61814, 0.04819, 8.5),
]


@pytest.mark.parametrize(("k", "c", "plus", "length", "b", "loss", "llc"), PUBLISHED)
def test_critical_points_match_published_table(k, c, plus, length, b, loss, llc):
    (p,) = [p for p in T.critical_points(c, k) if p.plus == plus and p.minus == 0]
    assert round(p.length, 4) == round(length, 4) and round(p.bias, 4) == round(b, 4)
    if loss is not None:
        assert round(p.loss, 4) == round(loss, 4)
    if llc is not None:
        assert p.llc == llc


def test_critical_points_table_structure():
    pts = T.critical_points(6)
    # D14: 6, 5, 5⁺ and the 4-gon with σ = 0..2 positive-bias dead features and φ = 0..4 switched-off vertices.
    assert sorted((p.k, p.plus, p.minus) for p in pts) == sorted(
        [(6, 0, 0), (5, 0, 0), (5, 1, 0)] + [(4, s, f) for s in range(3) for f in range(5)]
    )
    assert [p.loss for p in pts] == sorted(p.loss for p in pts)
    assert {p.variant for p in pts} == {"k", "k+"}
    # Every row is a critical point of the full loss at its own weights.
    for p in pts:
        W, b = p.weights()
        W.requires_grad_(True)
        b.requires_grad_(True)
        T.one_hot_loss(W, b).sum().backward()
        assert W.grad.abs().max() < 1e-9 and b.grad.abs().max() < 1e-9, p.name
        assert T.one_hot_loss(W, b).item() == pytest.approx(p.loss, abs=1e-12)
    with pytest.raises(ValueError):
        T.critical_points(6, k=7)
    with pytest.raises(ValueError):
        T.critical_points(3)


def test_d14_eighteen_families_at_c6_and_the_k_plus_spacing():
    """paper-spec §7.2 D14: the paper counts 18 families k^{σ+,φ−} at c = 6; 4⁺ has one dead feature at bias 1/(2c),
    which lowers L by exactly 1/(4c²) = 1/144."""
    pts = {p.name: p for p in T.critical_points(6)}
    assert len(pts) == 18
    L4 = (0 + 6 - 4) / 18  # h_4 = 0, two dead features
    assert pts["4"].loss == pytest.approx(L4, abs=1e-12)
    assert pts["4⁺"].loss == pytest.approx(L4 - 1 / 144, abs=1e-12)
    assert pts["4²⁺"].loss == pytest.approx(L4 - 2 / 144, abs=1e-12)
    assert pts["5⁺"].loss == pytest.approx(pts["5"].loss - 1 / 144, abs=1e-12)
    # A switched-off 4-gon vertex is one more dead feature: +1/(3c).
    assert pts["4²⁺³⁻"].loss == pytest.approx(L4 + 3 / 18 - 2 / 144, abs=1e-12)
    assert pts["4⁴⁻"].loss == pytest.approx(1 / 3, abs=1e-12)  # all four off: the model outputs 0
    # c = 5: 5 plus 4^{σ+,φ−} with σ ≤ 1, φ ≤ 4; c = 4: the 4-gon with φ ≤ 4.
    assert len(T.critical_points(5)) == 11 and len(T.critical_points(4)) == 5


@pytest.mark.parametrize(
    ("k", "c", "plus", "minus"), [(4, 6, 1, 0), (5, 6, 1, 0), (4, 6, 2, 1), (4, 5, 1, 3), (4, 7, 3, 2)]
)
def test_family_loss_closed_form_equals_the_loss_of_its_weights(k, c, plus, minus):
    """One k^{σ+,φ−} per case: L = (h_k + c − k + φ − 3σ/(4c))/(3c) equals the exact loss of the family's weights."""
    sol = T.solve_kgon(k)
    closed = (sol.h + c - k + minus - 3 * plus / (4 * c)) / (3 * c)
    assert sol.loss(c, plus, minus) == pytest.approx(closed, abs=1e-14)
    W, b = T.kgon_weights(k, c, sol.length, sol.bias, plus, dead_bias=-0.1, switched_off=minus)
    assert T.one_hot_loss(W, b).item() == pytest.approx(closed, abs=1e-12)


def test_switching_off_is_only_a_4gon_family():
    with pytest.raises(ValueError, match="4-gon"):
        T.solve_kgon(5).loss(6, 0, 1)
    # A 5-gon vertex at b ≤ −l² is not a critical point: its neighbours' optimum moves (why φ is 4-gons only).
    sol = T.solve_kgon(5)
    W, b = T.kgon_weights(5, 5, sol.length, sol.bias, switched_off=1)
    W.requires_grad_(True)
    T.one_hot_loss(W, b).backward()
    assert W.grad.abs().max() > 1e-3


def test_family_names():
    assert [T.family_name(*a) for a in [(6,), (5, 1), (4, 2), (4, 0, 1), (4, 2, 1), (4, 1, 3), (4, 2, 4)]] == [
        "6",
        "5⁺",
        "4²⁺",
        "4⁻",
        "4²⁺⁻",
        "4⁺³⁻",
        "4²⁺⁴⁻",
    ]
    p = next(p for p in T.critical_points(6) if (p.k, p.plus, p.minus) == (4, 2, 1))
    assert p.label == "4²⁺⁻-gon" and p.to_dict()["name"] == "4²⁺⁻"
    assert (p.to_dict()["plus"], p.to_dict()["minus"]) == (2, 1)


def test_published_second_12gon_is_not_a_critical_point():
    """D14: (1.24975, −0.85483) violates b > −l²/2 (the second neighbours never fire there) and the exact h_12 has a
    nonzero gradient; our solver's only 12-gon has zero gradient."""
    length, b = T.PUBLISHED_SECOND_12GON
    assert b + length**2 / 2 == pytest.approx(-0.0739, abs=1e-4)
    _, dl, db = T.kgon_gradient(12, length, b)
    assert math.hypot(dl, db) > 0.1
    (ours,) = T.kgon_solutions(12)
    assert math.hypot(*T.kgon_gradient(12, ours.length, ours.bias)[1:]) < 1e-9


# ---- nonlinear compression (§2.13, E19) ---------------------------------------------------------------


@pytest.mark.parametrize("Z", [2, 3, 5])
def test_compression_exact_quantisation_limit(Z):
    assert T.compression_mse(Z, 0.0, grid=600) == pytest.approx(1 / (12 * Z**2), rel=1e-4)
    # ε → 0 is continuous: a tiny ramp changes little.
    assert T.compression_mse(Z, 1e-4, grid=600) == pytest.approx(1 / (12 * Z**2), rel=0.05)


def test_compression_beats_linear_and_grows_with_eps():
    assert T.linear_compression_mse("keep-one", grid=600) == pytest.approx(T.LINEAR_COMPRESSION_MSE, rel=1e-5)
    assert T.linear_compression_mse("average", grid=600) == pytest.approx(T.LINEAR_COMPRESSION_MSE, rel=1e-5)
    assert T.compression_mse(3, 0.1, grid=600) < T.LINEAR_COMPRESSION_MSE  # the paper's claim
    mses = [T.compression_mse(3, e, grid=300) for e in (0.0, 0.02, 0.05, 0.1, 0.2)]
    assert mses == sorted(mses)
    with pytest.raises(ValueError):
        T.compression_mse(3, 0.5)
