"""Known-answer tests for tmslab.metrics (paper-spec §3; checklist E5, E6, E13, F4)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tmslab import metrics as M
from tmslab import theory as T

# (constructor, expected D of every feature, expected label summary)
POLYTOPES = [
    (lambda: T.regular_polygon(3), [2 / 3] * 3, "triangle"),
    # A square is two orthogonal antipodal pairs: the interference graph splits it, like the octahedron.
    (lambda: T.regular_polygon(4), [1 / 2] * 4, "2 × antipodal pair"),
    (lambda: T.regular_polygon(5), [2 / 5] * 5, "pentagon"),
    (lambda: T.regular_polygon(6), [1 / 3] * 6, "hexagon"),
    (lambda: T.regular_polygon(9), [2 / 9] * 9, "9-gon"),
    (T.tetrahedron, [3 / 4] * 4, "tetrahedron"),
    (lambda: T.simplex(4), [4 / 5] * 5, "4-simplex"),
    (T.square_antiprism, [3 / 8] * 8, "square antiprism"),
    (T.cube, [3 / 8] * 8, "cube"),
    (T.icosahedron, [3 / 12] * 12, "icosahedron"),
    (T.octahedron, [1 / 2] * 6, "3 × antipodal pair"),
    (T.triangular_bipyramid, [2 / 3] * 3 + [1 / 2] * 2, "triangle + antipodal pair"),
    (T.pentagonal_bipyramid, [2 / 5] * 5 + [1 / 2] * 2, "pentagon + antipodal pair"),
    (T.antipodal_pair, [1 / 2] * 2, "antipodal pair"),
    (lambda: T.tegum(T.regular_polygon(5), torch.ones(1, 1, 1)), [2 / 5] * 5 + [1.0], "pentagon + dedicated"),
]


def _rotation(m: int, d: int, seed: int) -> torch.Tensor:
    """A random m×d matrix with orthonormal columns (an isometric embedding of R^d in R^m)."""
    q, _ = torch.linalg.qr(torch.randn(m, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q[:, :d]


@pytest.mark.parametrize(("make", "expected", "summary"), POLYTOPES)
def test_polytope_dimensionality_exact(make, expected, summary):
    W = make()
    D = M.feature_dimensionality(W)[0]
    assert torch.allclose(D, torch.tensor(expected, dtype=torch.float64), atol=1e-9, rtol=0)
    # Tight frames and tegum products of them pack perfectly: Σ D_i = m (§3 equality case).
    assert D.sum().item() == pytest.approx(W.shape[1], abs=1e-9)
    assert M.describe_polytopes(M.polytopes(W)[0]) == summary


@pytest.mark.parametrize(("make", "expected", "summary"), POLYTOPES)
def test_polytopes_survive_rotation_scaling_and_dead_features(make, expected, summary):
    W = make()[0]
    d, k = W.shape
    m = d + 2
    rot = _rotation(m, d, seed=k)
    dead = 1e-3 * torch.randn(m, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    Wr = torch.cat([dead[:, :1], 1.2 * rot @ W, dead[:, 1:]], dim=1)[None]  # trained polytopes have norm ≠ 1
    comps = M.polytopes(Wr)[0]
    assert M.describe_polytopes(comps) == summary
    assert sorted(f for c in comps for f in c.features) == list(range(1, k + 1))
    D = M.feature_dimensionality(Wr)[0]
    assert torch.allclose(D[1 : k + 1], torch.tensor(expected, dtype=torch.float64), atol=1e-5)
    assert D[0] < 1e-4 and D[-1] < 1e-4


def test_component_fields_and_other_label():
    comps = M.polytopes(T.triangular_bipyramid())[0]
    tri, pair = comps
    assert (tri.size, tri.dim, tri.features, tri.label) == (3, 2, (0, 1, 2), "triangle")
    assert (pair.size, pair.dim, pair.features, pair.label) == (2, 1, (3, 4), "antipodal pair")
    assert tri.D == pytest.approx((2 / 3,) * 3)
    # A squashed triangle has unequal D values: 'other'. Two features at 60° are not a polytope either.
    squashed = torch.tensor([[[1.0, -0.5, -0.5], [0.0, 0.5, -0.5]]], dtype=torch.float64)
    assert M.describe_polytopes(M.polytopes(squashed)[0]) == "other"
    sixty = torch.tensor([[[1.0, 0.5], [0.0, math.sqrt(3) / 2]]], dtype=torch.float64)
    assert M.describe_polytopes(M.polytopes(sixty)[0]) == "other"
    # Nothing learned.
    assert M.describe_polytopes(M.polytopes(torch.zeros(1, 2, 4))[0]) == "none"


def test_polytopes_batched_and_summary_counts():
    W = torch.cat([T.tegum(T.antipodal_pair(), T.antipodal_pair(), torch.ones(1, 1, 1)), torch.zeros(1, 3, 5)])
    comps = M.polytopes(W)
    assert M.describe_polytopes(comps[0]) == "2 × antipodal pair + dedicated"
    assert M.describe_polytopes(comps[1]) == "none"


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 6),
    n=st.integers(1, 12),
    seed=st.integers(0, 10_000),
    n_tiny=st.integers(0, 3),
    n_dup=st.integers(0, 3),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
)
def test_dimensionality_bound_property(m, n, seed, n_tiny, n_dup, scale):
    """Σ_i D_i ≤ m and D_i ∈ [0, 1] for any W (§3 bound), including near-zero and duplicated columns."""
    g = torch.Generator().manual_seed(seed)
    W = scale * torch.randn(2, m, n, generator=g, dtype=torch.float64)
    tiny_scale = torch.tensor([1e-9, 1e-5, 1e-12, 0.0], dtype=torch.float64)[:n_tiny]
    tiny = torch.randn(2, m, n_tiny, generator=g, dtype=torch.float64) * tiny_scale
    dups = W[..., : min(n_dup, n)] * (-1.0) ** torch.arange(min(n_dup, n))
    W = torch.cat([W, tiny, dups], dim=-1).to(torch.float32 if seed % 2 else torch.float64)
    D = M.feature_dimensionality(W)
    assert (D >= 0).all() and (D <= 1).all()
    assert (D.sum(-1) <= m + 1e-6).all()


def test_capacity_equals_dimensionality():
    """F4: Scherlis et al.'s C_i = (W_i·W_i)² / Σ_j (W_i·W_j)² is D_i."""
    W = torch.randn(3, 4, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    G = W.transpose(-1, -2) @ W
    C = torch.diagonal(G, dim1=-2, dim2=-1) ** 2 / (G**2).sum(-1)
    assert torch.allclose(M.feature_dimensionality(W), C, atol=1e-12)
    # The notebook-form definition ‖W_i‖² / Σ_j (Ŵ_i·W_j)² agrees too.
    unit = W / W.norm(dim=-2, keepdim=True)
    D = W.norm(dim=-2) ** 2 / ((unit.transpose(-1, -2) @ W) ** 2).sum(-1)
    assert torch.allclose(M.feature_dimensionality(W), D, atol=1e-12)


def test_basic_geometry_metrics():
    W = torch.tensor([[[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]]])
    assert torch.allclose(M.feature_norms(W), torch.tensor([[1.0, 1.0, 2.0, 0.0]], dtype=torch.float64))
    assert torch.allclose(M.gram(W)[0, 0], torch.tensor([1.0, -1.0, 0.0, 0.0], dtype=torch.float64))
    sup = M.superposition(W)[0]
    assert sup[:2].tolist() == pytest.approx([1.0, 1.0], abs=1e-4)  # antipodal: the partner fully interferes
    assert sup[2:].tolist() == pytest.approx([0.0, 0.0], abs=1e-12)
    assert M.polysemanticity(4 * W)[0, :2].tolist() == pytest.approx([4.0, 4.0], abs=1e-3)
    assert M.learned_features(W).item() == pytest.approx(6.0)
    assert M.dimensions_per_feature(W).item() == pytest.approx(2 / 6)
    assert M.feature_dimensionality(W)[0].tolist() == pytest.approx([0.5, 0.5, 1.0, 0.0])


def test_datapoint_dimensionality_pentagon():
    h = T.regular_polygon(5).transpose(-1, -2)  # five datapoints' hidden vectors [1, batch, hidden]
    assert torch.allclose(M.datapoint_dimensionality(h), torch.full((1, 5), 0.4, dtype=torch.float64))


def test_angles():
    square = torch.cat([T.tegum(T.antipodal_pair(), T.antipodal_pair()), torch.zeros(1, 2, 1)], dim=-1)
    W = torch.cat([1.17 * T.regular_polygon(5, phase=0.3), square])
    W = torch.cat([W, torch.zeros(2, 2, 1)], dim=-1)  # dead features are ignored
    gaps = M.angular_gaps(W)
    assert gaps[0].tolist() == pytest.approx([72.0] * 5)
    assert gaps[1].tolist() == pytest.approx([90.0] * 4)
    assert float(sum(gaps[0])) == pytest.approx(360.0)
    ng = M.neighbour_gaps(W, feature=0)
    assert ng[0].tolist() == pytest.approx([72.0, 72.0])
    assert ng[1].tolist() == pytest.approx([90.0, 90.0])
    assert torch.isnan(M.neighbour_gaps(W, feature=5)).all()
    irregular = torch.tensor([[[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]]])
    assert M.angular_gaps(irregular, sort=False)[0].tolist() == pytest.approx([90.0, 90.0, 180.0])
    assert M.neighbour_gaps(irregular, feature=1)[0].tolist() == pytest.approx([90.0, 90.0])
    assert M.neighbour_gaps(irregular, feature=0)[0].tolist() == pytest.approx([180.0, 90.0])
    with pytest.raises(ValueError):
        M.feature_angles(torch.zeros(1, 3, 2))


def test_neuron_metrics_hand_built():
    # neurons × features: a monosemantic neuron, a 2-feature neuron (one weak secondary at 5% is ignored),
    # a dead neuron, and a 3-feature binary-code neuron with mixed signs.
    W = torch.tensor(
        [
            [
                [2.0, 0.05, 0.0, 0.0],
                [0.0, 1.0, -0.5, 0.05],
                [0.0, 0.0, 0.0, 0.0],
                [0.3, -0.3, 0.0, 0.3],
            ]
        ]
    )
    assert M.neuron_feature_counts(W)[0].tolist() == [1, 2, 0, 3]
    assert M.polysemantic_neurons(W)[0].tolist() == [False, True, False, True]
    assert M.monosemantic_neurons(W)[0].tolist() == [True, False, False, False]
    # Positive weights above 20% of the feature's (column's) largest positive weight.
    assert M.neurons_per_feature(W)[0].tolist() == [1, 1, 0, 1]
    assert M.features_per_neuron(W)[0].tolist() == [1, 1, 0, 2]
    # Relative thresholds are invariant under a positive per-neuron rescale (footnote 15).
    scaled = W * torch.tensor([3.0, 0.2, 1.0, 7.0])[None, :, None]
    assert torch.equal(M.neuron_feature_counts(scaled), M.neuron_feature_counts(W))
    sup = M.features_in_superposition(W)[0]
    assert sup[:3].tolist() == [False, True, True]  # feature 0 only weakly overlaps; 1 and 2 share neuron 1
    assert M.features_in_superposition(torch.eye(3)[None])[0].tolist() == [False, False, False]


def test_abs_rescale_preserves_function():
    g = torch.Generator().manual_seed(3)
    W1 = torch.randn(2, 6, 4, generator=g, dtype=torch.float64)
    W1[0, 2] = 0.0  # a dead unit is left alone
    W2 = torch.randn(2, 4, 6, generator=g, dtype=torch.float64)
    x = 2 * torch.rand(2, 50, 4, generator=g, dtype=torch.float64) - 1
    R1, R2 = M.abs_rescale(W1, W2)
    assert torch.allclose(R1.abs().max(-1).values[0, [0, 1, 3, 4, 5]], torch.ones(5, dtype=torch.float64))
    assert torch.allclose(R1.abs().max(-1).values[1], torch.ones(6, dtype=torch.float64))

    def f(A, B):
        return torch.einsum("ifh,ibh->ibf", B, torch.relu(torch.einsum("ihf,ibf->ibh", A, x)))

    assert torch.allclose(f(R1, R2), f(W1, W2), atol=1e-12)


def test_attack_directions_unit_and_proportional_to_gram_rows():
    W = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    W[1, :, 4] = 0
    u = M.attack_directions(W)
    G = M.gram(W)
    assert torch.allclose(u[0].norm(dim=-1), torch.ones(7, dtype=torch.float64))
    assert torch.allclose(u[0, 2] * G[0, 2].norm(), G[0, 2])
    assert (u[1, 4] == 0).all()


def test_adversarial_orthogonal_model():
    """Dedicated features: the attack on feature i moves only output i, by λ; loss rises by exactly I_i λ²."""
    n = 4
    W = torch.eye(n)[None]
    b = torch.zeros(1, n)
    x = torch.rand(1, 64, n, generator=torch.Generator().manual_seed(0))
    imp = torch.tensor([[1.0, 0.9, 0.8, 0.7]])
    res = M.adversarial_losses(W, b, x, importance=imp)
    lam = 0.1 * x.double().norm(dim=-1).mean()
    assert res.radius.item() == pytest.approx(lam.item())
    assert res.clean.item() == pytest.approx(0.0, abs=1e-12)
    assert res.attacked.item() == pytest.approx(lam.item() ** 2, rel=1e-9)
    assert res.feature.item() == 0  # the most important feature is the most harmful to attack


def test_adversarial_antipodal_pair_doubles_damage():
    """W = [1, −1]: δ = λ(1, −1)/√2 raises output 0 by √2λ (x = 0), so the loss is 2λ², twice the dedicated model's."""
    x = torch.zeros(1, 1, 2)
    b = torch.zeros(1, 2)
    lam = 0.3
    anti = M.adversarial_losses(T.antipodal_pair(), b, x, radius=lam)
    ortho = M.adversarial_losses(torch.eye(2)[None], b, x, radius=lam)
    assert anti.attacked.item() == pytest.approx(2 * lam**2)
    assert ortho.attacked.item() == pytest.approx(lam**2)
    vul = M.vulnerability(anti.clean, anti.attacked, ortho.clean, ortho.attacked)
    assert vul.item() == pytest.approx(2.0)
    # Linear output: both outputs move by √2λ, one up and one down.
    lin = M.adversarial_losses(T.antipodal_pair(), b, x, radius=lam, model="linear")
    assert lin.attacked.item() == pytest.approx(4 * lam**2)


def test_adversarial_batched_instances_independent():
    g = torch.Generator().manual_seed(5)
    W = torch.randn(3, 2, 5, generator=g)
    b = -0.1 * torch.rand(3, 5, generator=g)
    x = torch.rand(3, 32, 5, generator=g) * (torch.rand(3, 32, 5, generator=g) < 0.3)
    full = M.adversarial_losses(W, b, x)
    for k in range(3):
        one = M.adversarial_losses(W[k : k + 1], b[k : k + 1], x[k : k + 1])
        assert one.attacked.item() == pytest.approx(full.attacked[k].item())
        assert one.feature.item() == full.feature[k].item()
    assert (full.attacked >= full.clean - 1e-12).all()
