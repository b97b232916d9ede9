"""The optimizer protocol end to end on a tiny budget: a real ``train.py`` process, read back from what it wrote.

The oracles are the jobs' own TensorBoard event files and Hydra's ``overrides.yaml``: which
learning rate each optimizer should have been confirmed at, on which seeds, with what test mean.
"""

from __future__ import annotations

import csv
import statistics
import struct
from pathlib import Path

import pytest
import yaml

from conftest import hparams_session, read_scalars, run_train

pytestmark = pytest.mark.xdist_group("protocol")

GRID = (0.001, 0.01, 0.1)
TINY = [
    "experiment=optimizer_protocol",
    "hydra.sweeper.optimizers=[adam,sgd]",
    "hydra.sweeper.lr_grid.low=1e-3",
    "hydra.sweeper.lr_grid.high=0.1",
    "hydra.sweeper.lr_grid.points=3",
    "hydra.sweeper.tuning_seeds=2",
    "hydra.sweeper.confirm_seeds=2",
    "trainer.max_epochs=2",
    "data.n_samples=400",
    "callbacks.progress_bar.refresh_rate=0",
]


def jobs_in(sweep_dir: Path) -> dict[Path, dict[str, str]]:
    """Every job directory with the overrides Hydra recorded for it."""
    return {
        path.parent.parent: dict(item.split("=", 1) for item in yaml.safe_load(path.read_text()))
        for path in sweep_dir.glob("*/.hydra/overrides.yaml")
    }


def replica_finals(job_dir: Path, tag: str) -> list[float]:
    """The last value of ``tag`` each seed of a ``replicas=K`` job logged to TensorBoard."""
    return [read_scalars(replica)[tag][-1][1] for replica in sorted(job_dir.glob("replica_*"))]


def confirmed(jobs: dict[Path, dict[str, str]]) -> dict[Path, dict[str, str]]:
    """The fresh-seed jobs of tuned configurations: the tuning jobs' keys on new seeds (torch defaults set others)."""
    tuning_keys = {frozenset(o) for o in jobs.values() if o["seed"] == "2020"}
    return {job: o for job, o in jobs.items() if o["seed"] == "3020" and frozenset(o) in tuning_keys}


def is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24])[0] > 100


@pytest.fixture(scope="module")
def protocol(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    cwd = tmp_path_factory.mktemp("protocol")
    result = run_train(TINY, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "logs" / "protocols" / "optimizer_protocol", result.stdout + result.stderr


def test_every_optimizer_is_tuned_on_the_same_grid_and_seeds(protocol: tuple[Path, str]) -> None:
    sweep_dir, _ = protocol
    tuning = {job: overrides for job, overrides in jobs_in(sweep_dir).items() if overrides["seed"] == "2020"}
    for optimizer in ("adam", "sgd"):
        rates = sorted(float(o["optimizer.lr"]) for o in tuning.values() if o["optimizer"] == optimizer)
        assert rates == list(GRID)
    assert {o["replicas"] for o in tuning.values()} == {"2"}  # two tuning seeds, trained together
    for job in tuning:  # validation carved from the training rows, as the experiment sets it
        assert yaml.safe_load((job / ".hydra" / "config.yaml").read_text())["data"]["val_fraction"] == 0.2


def test_the_best_rate_by_validation_is_confirmed_on_fresh_seeds_and_tested(protocol: tuple[Path, str]) -> None:
    sweep_dir, _ = protocol
    jobs = jobs_in(sweep_dir)
    with (sweep_dir / "protocol.csv").open() as stream:
        rows = {(row["stage"], row["optimizer"]): row for row in csv.DictReader(stream)}
    for optimizer in ("adam", "sgd"):
        tuned = {
            float(o["optimizer.lr"]): statistics.fmean(replica_finals(job, "val/loss"))
            for job, o in jobs.items()
            if o["optimizer"] == optimizer and o["seed"] == "2020"
        }
        best = min(tuned, key=tuned.__getitem__)
        (confirm_dir,) = [job for job, o in confirmed(jobs).items() if o["optimizer"] == optimizer]
        assert float(jobs[confirm_dir]["optimizer.lr"]) == best
        assert float(rows["confirm", optimizer]["lr"]) == best and rows["confirm", optimizer]["seeds"] == "2"
        tests = replica_finals(confirm_dir, "test/loss")
        assert float(rows["confirm", optimizer]["test_mean"]) == pytest.approx(statistics.fmean(tests), rel=1e-6)
        assert hparams_session(confirm_dir)["optimizer/lr"] == pytest.approx(best)  # TensorBoard shows the tuned rate
        # Validation rows are carved from the training rows: its loss is not the test loss.
        assert replica_finals(confirm_dir, "val/loss") != tests


def test_torch_defaults_run_beside_the_tuned_ones(protocol: tuple[Path, str]) -> None:
    sweep_dir, output = protocol
    jobs = jobs_in(sweep_dir)
    defaults = [o for job, o in jobs.items() if o["seed"] == "3020" and job not in confirmed(jobs)]
    assert sorted(o["optimizer"] for o in defaults) == ["adam", "sgd"]
    sgd = next(o for o in defaults if o["optimizer"] == "sgd")
    # What configs/optimizer/sgd.yaml sets is put back to torch's own defaults: no momentum, lr 0.001.
    assert (sgd["optimizer.momentum"], sgd["optimizer.lr"]) == ("0", "0.001")
    markdown = (sweep_dir / "protocol.md").read_text()
    assert "| sgd | torch defaults | 2 | 0 |" in markdown and "Holm" in markdown
    assert is_png(sweep_dir / "sensitivity.png") and is_png(sweep_dir / "confirmed.png")
    assert "protocol  logs/protocols/optimizer_protocol/protocol.md" in output


def test_running_it_again_trains_only_what_did_not_finish(protocol: tuple[Path, str]) -> None:
    sweep_dir, _ = protocol
    cwd = sweep_dir.parents[2]
    before = set(jobs_in(sweep_dir))
    table = (sweep_dir / "protocol.csv").read_text()
    again = run_train(TINY, cwd=cwd)
    assert again.returncode == 0 and set(jobs_in(sweep_dir)) == before
    assert (sweep_dir / "protocol.csv").read_text() == table
    # A job that was killed has no result.json: the next attempt trains it again, and only it.
    killed = next(job for job, o in jobs_in(sweep_dir).items() if o["optimizer"] == "sgd" and o.get("optimizer.lr") == "0.1")
    (killed / "result.json").unlink()
    resumed = run_train(TINY, cwd=cwd)
    assert resumed.returncode == 0
    (new,) = set(jobs_in(sweep_dir)) - before
    assert jobs_in(sweep_dir)[new] == jobs_in(sweep_dir)[killed] and new.name.startswith(f"{len(before)}_")
    output = resumed.stdout + resumed.stderr
    assert "7 of 8 jobs finished in an earlier attempt: reused" in output  # tuning and defaults
    assert "2 of 2 jobs finished in an earlier attempt: reused" in output  # the confirmations


def test_a_config_every_job_would_fail_on_stops_the_protocol_before_any_job(tmp_path: Path) -> None:
    result = run_train([*TINY, "data.batch_size=0"], cwd=tmp_path)
    assert result.returncode == 1
    last = (result.stdout + result.stderr).rstrip().splitlines()[-1]
    assert last.endswith("[HYDRA] data.batch_size=0 is not valid: expected an integer >= 1")
    assert not jobs_in(tmp_path / "logs" / "protocols" / "optimizer_protocol")


@pytest.mark.slow
def test_across_tasks_through_the_parallel_launcher_ends_with_a_performance_profile(tmp_path: Path) -> None:
    every_task = [override for override in TINY[1:] if not override.startswith("data.")]
    tasks = ["experiment=optimizer_protocol_tasks", *every_task, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2"]
    result = run_train(tasks, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_dir = tmp_path / "logs" / "protocols" / "optimizer_protocol_tasks"
    jobs = jobs_in(sweep_dir)
    medians: dict[str, dict[str, float]] = {}
    for job, overrides in confirmed(jobs).items():  # the oracle: each confirmed job's test/loss from TensorBoard
        medians.setdefault(overrides["data"], {})[overrides["optimizer"]] = statistics.median(replica_finals(job, "test/loss"))
    assert sorted(medians) == ["blobs", "breast_cancer", "digits"]
    markdown = (sweep_dir / "protocol.md").read_text()
    for optimizer in ("adam", "sgd"):
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {optimizer} | ") and "%" in line)
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        for task, cell in zip(("blobs", "digits", "breast_cancer"), cells[1:4]):
            ratio = medians[task][optimizer] / min(medians[task].values())
            assert cell == f"{ratio:.4g}"
        within = sum(medians[task][optimizer] <= 1.1 * min(medians[task].values()) for task in medians)
        assert cells[4] == f"{within / 3:.0%}"
    assert is_png(sweep_dir / "profile.png")
