"""Issue acceptance: the intro model trained from the CLI shows the paper's geometry (paper-spec §7 E1).

`tms train --features 5 --hidden 2 --density 1,0.05 --importance-decay 0.9 --restarts 8` must give, in the
best restart per density: at density 1 the two most important features orthogonal at norm 1 and the
others dropped with bias ≈ 0.5; at density 0.05 a regular pentagon. The checks are the ones
`tms reproduce` uses (tmslab.experiments.intro), computed from the saved weights.
"""

import pytest

import tmslab
from tmslab.experiments.intro import dense_checks


def _failed(checks):
    return [f"{c.name}: {c.measured} not in {c.expected}" for c in checks if not c.passed]


@pytest.mark.slow
def test_intro_geometry_from_cli(tms, tmp_path):
    out = tmp_path / "R"
    code, _, err = tms("train", "--features", 5, "--hidden", 2, "--density", "1,0.05", "--importance-decay", 0.9,
                       "--restarts", 8, "--out", out, "--quiet")
    assert code == 0, err
    run = tmslab.load_run(out)
    dense, sparse = run.best_indices()
    W, b = run.W.double(), run.b.double()
    assert not _failed(dense_checks(W[dense], b[dense]))
    from tmslab import metrics

    gaps = metrics.angular_gaps(W[sparse][None])[0]
    assert len(gaps) == 5, f"pentagon needs 5 learned features, got {len(gaps)}"
    assert ((gaps - 72).abs() <= 3).all(), f"gaps {gaps.tolist()} not 72° ± 3°"
