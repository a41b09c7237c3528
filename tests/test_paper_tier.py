"""The paper fidelity tier (paper-spec §7.2 D11; issue 30): `tms reproduce --fidelity paper`, what it trains, its
plan and estimate (`--dry-run`), the tiers a folder may hold, and the rows that need the paper's scale."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

import tmslab.training as training
from tmslab.cli import main
from tmslab.config import ConfigError, TrainConfig
from tmslab.experiments import get
from tmslab.experiments.base import Analysis, Check, Context, Experiment, needs
from tmslab.experiments.estimate import plan, time_config
from tmslab.experiments.runner import check_fidelity, reproduce, run_experiment, write_summary


def tiny(steps: int = 20, **overrides) -> TrainConfig:
    return TrainConfig(**{"n_features": 5, "n_hidden": 2, "density": [0.1], "steps": steps, "batch_size": 64,
                          "eval_samples": 500, **overrides})


class Toy(Experiment):
    """A tiny experiment with a paper tier: 20 steps at full fidelity, 200 at paper; one claim of each tier."""

    name = "toy-paper"
    paper_tier = True

    def runs(self, quick: bool) -> dict[str, TrainConfig]:
        return {"run": tiny(10 if quick else 20)}

    def runs_at(self, fidelity):
        return {"run": tiny(200)} if fidelity == "paper" else self.runs(fidelity == "quick")

    def analyze(self, ctx: Context) -> Analysis:
        steps = ctx.runs["run"].config.steps
        return Analysis([
            Check("trained for some steps", steps, "≥ 1", steps >= 1),
            needs(Check("trained at the paper's schedule", steps, "≥ 200", steps >= 200), "paper"),
        ])  # fmt: skip


class Plain(Toy):
    """The same without a paper tier: at paper fidelity it runs (and is recorded) at full."""

    name = "toy-plain"
    paper_tier = False


@pytest.fixture
def registered(monkeypatch):
    """Toy and Plain as registered experiments (summaries and `reproduce` read the registry)."""
    from tmslab.experiments import EXPERIMENTS

    monkeypatch.setitem(EXPERIMENTS, Toy.name, Toy())
    monkeypatch.setitem(EXPERIMENTS, Plain.name, Plain())
    return [Toy.name, Plain.name]


def test_paper_rows_are_judged_only_at_paper_fidelity(tmp_path):
    full = run_experiment(Toy(), tmp_path / "full", "full", progress=False)
    paper = run_experiment(Toy(), tmp_path / "paper", "paper", progress=False)
    assert full["tier"] == "full" and paper["tier"] == "paper"
    row = {r["tier"]: r for r in full["checks"]}["paper"]
    assert row["status"] == "not evaluated" and row["reason"] == "needs paper fidelity" and row["judged_at"] is None
    assert [(r["status"], r["judged_at"]) for r in paper["checks"]] == [("pass", "paper"), ("pass", "paper")]
    assert json.loads((tmp_path / "paper" / "toy-paper" / "results.json").read_text())["tier"] == "paper"


def test_experiments_without_a_paper_tier_run_at_full_inside_a_paper_run(tmp_path):
    res = run_experiment(Plain(), tmp_path, "paper", progress=False)
    assert res["tier"] == "full" and res["quick"] is False
    assert res["configs"]["run"]["steps"] == 20
    assert {c["judged_at"] for c in res["checks"] if c["status"] != "not evaluated"} == {"full"}


def test_a_folder_holds_one_fidelity_and_a_full_one_may_be_continued_at_paper(tmp_path, registered):
    run_experiment(Plain(), tmp_path, "full", progress=False)
    write_summary(tmp_path)
    check_fidelity(tmp_path, "full")
    check_fidelity(tmp_path, "paper")  # the upgrade: full results of experiments without a paper tier are kept
    with pytest.raises(ConfigError, match="holds full-fidelity results.*quick"):
        check_fidelity(tmp_path, "quick")
    run_experiment(Toy(), tmp_path, "paper", progress=False)
    summary = write_summary(tmp_path)
    assert summary["fidelity"] == "paper" and summary["line"].startswith("paper fidelity: claims 3/3 pass")
    with pytest.raises(ConfigError, match="holds paper-fidelity results; give a new --out for full"):
        check_fidelity(tmp_path, "full")


def test_reproduce_paper_reuses_full_results_and_records_the_tier(tmp_path, registered):
    only = registered
    lines: list[str] = []
    reproduce(tmp_path / "r", only=only, fidelity="full", progress=False, log=lines.append)
    lines.clear()
    summary = reproduce(tmp_path / "r", only=only, fidelity="paper", progress=False, log=lines.append)
    assert any(line.startswith("toy-plain: done earlier") for line in lines)  # its full results are reused
    assert not any(line.startswith("toy-paper: done earlier") for line in lines)  # its paper runs are trained
    assert summary["fidelity"] == "paper"
    assert {r["experiment"]: r["judged_at"] for r in summary["checks"] if r["tier"] == "paper"} == {
        "toy-paper": "paper", "toy-plain": None}  # fmt: skip


def test_reanalyse_recomputes_the_checks_from_the_saved_runs_and_force_retrains(tmp_path, registered, monkeypatch):
    out = tmp_path / "r"
    reproduce(out, only=[Toy.name], fidelity="paper", progress=False, log=lambda line: None)
    model = out / Toy.name / "run" / "model.safetensors"
    results = out / Toy.name / "results.json"
    first = (model.stat().st_mtime_ns, results.stat().st_mtime_ns)
    trained: list[int] = []

    real_train = training.train

    def counting_train(config, **kw):
        trained.append(config.steps)
        return real_train(config, **kw)

    monkeypatch.setattr(training, "train", counting_train)
    summary = reproduce(out, only=[Toy.name], fidelity="paper", reanalyse=True, progress=False, log=lambda line: None)
    assert trained == [] and model.stat().st_mtime_ns == first[0]  # nothing retrained
    assert results.stat().st_mtime_ns > first[1] and summary["line"].startswith("paper fidelity: claims 2/2 pass")
    reproduce(out, only=[Toy.name], fidelity="paper", force=True, progress=False, log=lambda line: None)
    assert trained == [200]  # --force trains again
    code = main(["reproduce", "--only", Toy.name, "--out", str(out), "--force", "--reanalyse"])
    assert code == 2


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "dry"
    assert main(["reproduce", "--fidelity", "paper", "--only", "intro", "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("plan (paper fidelity, cpu;")
    assert "intro/importance-0.9: n=5, m=2" in text and "≈" in text
    assert "total: 2 runs to train" in text
    assert not out.exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--quick", "--fidelity", "full"], "--quick is short for --fidelity quick; it contradicts --fidelity full"),
        (["--fidelity", "huge"], "'huge' is not one of 'quick', 'full', 'paper'"),
    ],
)
def test_bad_fidelity_is_a_usage_error(tmp_path, capsys, args, fragment):
    out = tmp_path / "r"
    assert main(["reproduce", "--out", str(out), "--only", "intro", *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_device_cuda_without_a_gpu_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["reproduce", "--fidelity", "paper", "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
    assert "--device cuda needs a CUDA GPU" in capsys.readouterr().err


def test_plan_marks_saved_runs_and_finished_experiments(tmp_path):
    run_experiment(Plain(), tmp_path, "full", progress=False)
    assert [r.state for r in plan([Plain()], tmp_path, "paper").runs] == ["done"]
    assert [r.state for r in plan([Plain()], tmp_path, "paper", reanalyse=True).runs] == ["saved"]
    (tmp_path / Plain.name / "results.json").unlink()
    assert [r.state for r in plan([Plain()], tmp_path, "paper").runs] == ["saved"]
    fresh = plan([Toy()], tmp_path, "paper")
    assert [(r.state, r.config.steps) for r in fresh.runs] == [("train", 200)] and fresh.seconds > 0


def test_estimate_scales_with_steps():
    setup, per_step, per_sample = time_config(tiny())
    assert setup >= 0 and per_step > 0 and per_sample > 0


def test_scaling_paper_tier_trains_the_exp10_schedule_and_the_headline_only_on_a_gpu():
    from tmslab.experiments.scaling import HEADLINE_NEEDS, PAPER_SCHEDULE, ScalingLaws

    exp = ScalingLaws()
    paper = exp.runs_at("paper")
    assert len(paper) == 12 and not any(name.startswith("headline") for name in paper)
    assert {(c.steps, c.batch_size, c.warmup_steps) for c in paper.values()} == {
        (PAPER_SCHEDULE["steps"], PAPER_SCHEDULE["batch_size"], PAPER_SCHEDULE["warmup_steps"])}  # fmt: skip
    assert {c.steps for c in exp.runs_at("full").values()} == {3000}
    gpu = ScalingLaws(device="cuda").runs_at("paper")
    assert sum(name.startswith("headline") for name in gpu) == 8
    [row] = ScalingLaws._headline(SimpleNamespace(fidelity="paper", runs={}))
    assert row.status == "not evaluated" and row.reason == HEADLINE_NEEDS
    [row] = ScalingLaws._headline(SimpleNamespace(fidelity="full", runs={}))
    assert row.tier == "paper"  # gate() makes it "not evaluated (needs paper fidelity)" below the tier


def test_double_descent_paper_tier_adds_the_50000_step_runs_on_the_full_datasets():
    from tmslab.experiments.double_descent import GONS_RUN, M4_RUN, PAPER_STEPS, WD1_RUN
    from tmslab.training.finite import datasets

    exp = get("double-descent")
    full, paper = exp.runs_at("full"), exp.runs_at("paper")
    assert set(paper) == set(full) | {GONS_RUN, M4_RUN, WD1_RUN}
    assert all(paper[name] == full[name] for name in full)
    assert {paper[n].steps for n in (GONS_RUN, M4_RUN, WD1_RUN)} == {PAPER_STEPS}
    assert (paper[M4_RUN].weight_decay, paper[WD1_RUN].weight_decay) == (0.01, 1.0)
    # T = 3, 5, 10 with the very datasets of the full run's first three configurations
    gons, m2 = datasets(paper[GONS_RUN]), datasets(full["m2"])
    for k in range(paper[GONS_RUN].n_instances):
        a, b = gons.instance(k), m2.instance(k)
        assert torch.equal(a.col, b.col) and torch.equal(a.value, b.value)
