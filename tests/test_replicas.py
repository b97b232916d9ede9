"""replicas=K: K seeds in one run, each equal to the single run with its seed, each a run to the user."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import torch
from scipy import stats

from experiment.digits import MulticlassMLP
from experiment.model import BinaryClassifier
from optlab.errors import ConfigError, UserError
from optlab.replicas.module import Replicas

from conftest import compose_config, hparams_session, read_scalars, run_train, train_here

SMALL = ["data.n_samples=1000", "trainer.max_epochs=2", "trainer.log_every_n_steps=5"]  # 50 steps an epoch
SEED = 2020


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One run of three replicas, and the three single runs with their seeds."""
    root = tmp_path_factory.mktemp("replicas")
    train_here(compose_config(root / "replicas", [*SMALL, "replicas=3", f"seed={SEED}"]))
    for k in range(3):
        train_here(compose_config(root / f"seed{SEED + k}", [*SMALL, f"seed={SEED + k}"]))
    return {name: root / name for name in ("replicas", *(f"seed{SEED + k}" for k in range(3)))}


def test_replica_k_starts_from_the_weights_of_the_single_run_with_seed_plus_k() -> None:
    models = []
    for seed in (7, 8):
        torch.manual_seed(seed)
        models.append(BinaryClassifier(input_size=64))
    replicas = Replicas(models, seeds=[7, 8], optimizer=torch.optim.Adam)
    for k, seed in enumerate((7, 8)):
        torch.manual_seed(seed)  # the notebook's network, drawn in plain torch
        reference = torch.nn.Sequential(
            torch.nn.Linear(64, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 1024),
            torch.nn.ReLU(),
            torch.nn.Linear(1024, 1),
            torch.nn.Sigmoid(),
        )
        for name, expected in reference.state_dict().items():
            assert torch.equal(
                getattr(replicas.replicas[k].net.get_submodule(name.split(".")[0]), name.split(".")[1]), expected
            ), name


def test_each_replica_logs_the_epoch_losses_of_the_single_run_with_its_seed(runs: dict[str, Path]) -> None:
    for k in range(3):
        replica, single = read_scalars(runs["replicas"] / f"replica_{k:02d}"), read_scalars(runs[f"seed{SEED + k}"])
        assert replica.keys() == single.keys()
        for tag in ("train/loss_epoch", "val/loss", "val/acc", "test/acc"):
            assert [step for step, _ in replica[tag]] == [step for step, _ in single[tag]], tag
            for (_, ours), (_, theirs) in zip(replica[tag], single[tag], strict=True):
                # Batched matmuls round differently from one model's (about 1e-7 a layer), no more.
                assert ours == pytest.approx(theirs, rel=1e-4), (k, tag)
        assert [step for step, _ in replica["train/loss_step"]] == [step for step, _ in single["train/loss_step"]]


def test_the_run_logs_the_replicas_mean_and_each_replica_is_a_run_with_its_seed(runs: dict[str, Path]) -> None:
    run = runs["replicas"]
    replicas = [read_scalars(run / f"replica_{k:02d}") for k in range(3)]
    for tag, points in read_scalars(run).items():
        for i, (_, value) in enumerate(points):
            assert value == pytest.approx(statistics.mean(r[tag][i][1] for r in replicas), rel=1e-6), tag
    run_result = json.loads((run / "result.json").read_text())
    for k in range(3):
        directory = run / f"replica_{k:02d}"
        assert json.loads((directory / "replica.json").read_text()) == {"replica": k, "seed": SEED + k}
        result = json.loads((directory / "result.json").read_text())
        assert result["status"] == "ok" and result["steps"] == run_result["steps"] == 100
        assert result["metrics"]["val/loss"] == pytest.approx(replicas[k]["val/loss"][-1][1])
        assert hparams_session(directory)["seed"] == SEED + k
    assert hparams_session(run)["seed"] == SEED
    assert not any(name.startswith("replica_") for name in run_result["metrics"])


def test_a_replicas_run_resumes_bitwise(tmp_path: Path) -> None:
    args = ["data.n_samples=1000", "replicas=2"]
    train_here(compose_config(tmp_path / "straight", [*args, "trainer.max_epochs=3"]))
    train_here(compose_config(tmp_path / "half", [*args, "trainer.max_epochs=1"]))
    ckpt = tmp_path / "half" / "checkpoints" / "last.ckpt"
    train_here(compose_config(tmp_path / "resumed", [*args, "trainer.max_epochs=3", f"ckpt_path={ckpt}"]))
    straight = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert straight.keys() == resumed.keys() and any(name.startswith("stacked.") for name in straight)
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)
    for k in range(2):
        ours, theirs = (
            read_scalars(tmp_path / "straight" / f"replica_{k:02d}"),
            read_scalars(tmp_path / "resumed" / f"replica_{k:02d}"),
        )
        assert theirs["train/loss_epoch"] == ours["train/loss_epoch"][1:]
        assert theirs["test/acc"] == ours["test/acc"]


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (
            ["trainer.gradient_clip_val=1.0"],
            ConfigError,
            "trainer.gradient_clip_val=1.0 is not valid: replicas=2: the gradient norm would be one norm over all replicas",
        ),
        (
            ["optimizer._target_=torch.optim.LBFGS", "~optimizer.fused"],
            ConfigError,
            "optimizer._target_='LBFGS' is not valid: replicas=2 needs an element-wise torch optimizer",
        ),
        (
            ["+scheduler._target_=torch.optim.lr_scheduler.ReduceLROnPlateau", "+scheduler._partial_=true"],
            ConfigError,
            "scheduler._target_='ReduceLROnPlateau' is not valid",
        ),
    ],
)
def test_what_couples_replicas_is_refused_in_one_line(tmp_path: Path, overrides: list[str], error: type, message: str) -> None:
    with pytest.raises(error) as caught:
        train_here(compose_config(tmp_path, ["data.n_samples=400", "trainer.max_epochs=1", "replicas=2", *overrides]))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_model_without_model_step_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^replicas=2: Unstepped has no model_step\(batch\) to vectorise"):
        train_here(
            compose_config(
                tmp_path, ["data.n_samples=400", "trainer.max_epochs=1", "replicas=2", "model._target_=test_replicas.Unstepped"]
            )
        )


def test_a_model_that_builds_its_own_optimizer_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^replicas=2: OwnOptimizer takes no optimizer argument"):
        train_here(
            compose_config(
                tmp_path,
                ["data.n_samples=400", "trainer.max_epochs=1", "replicas=2", "model._target_=test_replicas.OwnOptimizer"],
            )
        )


class OwnOptimizer(BinaryClassifier):
    """The notebook's model with its optimizer chosen in code, as Lightning's own examples do."""

    def __init__(self, input_size: int) -> None:
        super().__init__(input_size, optimizer=lambda params: torch.optim.SGD(params, lr=0.01))


def test_a_hook_replicas_do_not_run_per_replica_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^replicas=2: BatchHooked overrides on_train_batch_end, which replicas do not run"):
        train_here(
            compose_config(
                tmp_path, ["data.n_samples=400", "trainer.max_epochs=1", "replicas=2", "model._target_=test_replicas.BatchHooked"]
            )
        )


class BatchHooked(BinaryClassifier):
    def on_train_batch_end(self, outputs: object, batch: object, batch_idx: int) -> None:
        pass


class Unstepped(BinaryClassifier):
    """The notebook's model with its steps written inline, as Lightning's own examples do."""

    model_step = None  # type: ignore[assignment]


def test_replicas_must_be_a_whole_number(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^replicas=0 is not valid: expected a whole number of seeds to train together, >= 1"):
        train_here(compose_config(tmp_path, ["replicas=0"]))


def test_a_sweep_counts_replicas_and_seed_jobs_alike_with_their_uncertainty(tmp_path: Path) -> None:
    """Two optimizers x (seeds 0-1 from replicas of one job, seeds 2-3 from another): four seeds per optimizer."""
    result = run_train(
        [
            "-m",
            "optimizer=adam,sgd",
            "seed=0,2",
            "replicas=2",
            "data.n_samples=400",
            "trainer.max_epochs=2",
            "callbacks.progress_bar.refresh_rate=0",
            "hydra.sweep.dir=sweep",
        ],
        cwd=tmp_path,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    sweep = tmp_path / "sweep"
    finals: dict[str, list[float]] = {"adam": [], "sgd": []}
    for job in sorted(p for p in sweep.iterdir() if (p / "result.json").is_file()):
        optimizer = "adam" if "optimizer-adam" in job.name else "sgd"
        for k in range(2):
            finals[optimizer].append(read_scalars(job / f"replica_{k:02d}")["val/loss"][-1][1])
    with (sweep / "groups.csv").open() as stream:
        rows = [row for row in csv.DictReader(stream) if row["column"] == "val/loss"]  # the optimised metric, final values
    for optimizer, values in finals.items():
        (row,) = (row for row in rows if f"optimizer={optimizer}" in row["configuration"])
        assert int(row["n"]) == 4
        mean, sd = statistics.mean(values), statistics.stdev(values)
        interval = stats.bootstrap((values,), statistics.mean, method="percentile", vectorized=False, random_state=0)
        low, high = interval.confidence_interval
        assert float(row["mean"]) == pytest.approx(mean, rel=1e-6)
        assert float(row["std"]) == pytest.approx(sd, rel=1e-6)
        assert (float(row["ci95_low"]), float(row["ci95_high"])) == pytest.approx((low, high), rel=1e-6)
    # Each run's closing lines give its replicas' spread: the two seeds of the first job, adam with seeds 0 and 1.
    adam = finals["adam"][:2]
    assert f"2 seeds, val/loss {statistics.mean(adam):.4g} ± {statistics.stdev(adam):.2g} sd, 95 % CI [" in result.stdout
    p_value = stats.ttest_ind(finals["adam"], finals["sgd"], equal_var=False).pvalue
    assert [float(row["p_vs_best"]) for row in rows if row["p_vs_best"]] == pytest.approx([p_value], rel=1e-6)


def test_eval_scores_every_replica_of_a_replicas_checkpoint(runs: dict[str, Path], tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir

    from optlab.config_checks import check_evaluation_config
    from optlab.evaluate import evaluate
    from optlab.runner import execute

    from conftest import CONFIG_DIR

    checkpoint = runs["replicas"] / "checkpoints" / "last.ckpt"
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        # Run in-process, the training run left no .hydra/ config beside its checkpoint: the settings are passed.
        cfg = compose(
            "eval",
            overrides=[
                f"ckpt_path={checkpoint}",
                f"paths.output_dir={tmp_path}",
                f"paths.log_dir={tmp_path}",
                "data.n_samples=1000",
                "replicas=3",
            ],
        )
    result = execute(evaluate, cfg, checks=check_evaluation_config)
    logged = read_scalars(tmp_path)
    trained = [json.loads((runs["replicas"] / f"replica_{k:02d}" / "result.json").read_text())["metrics"] for k in range(3)]
    for k, metrics in enumerate(trained):  # the weights each replica ended with, scored again
        for name in ("test/loss", "test/acc"):
            assert logged[f"replica_{k:02d}/{name}"][-1][1] == pytest.approx(metrics[name], rel=1e-6)
    assert result.metrics["test/acc"] == pytest.approx(statistics.mean(m["test/acc"] for m in trained), rel=1e-6)


def test_replicas_log_per_step_values_at_the_steps_a_single_run_does(tmp_path: Path) -> None:
    """Replicas skip per-step values no logger would see; with gradient accumulation the steps logged are the single run's."""
    args = ["data.n_samples=1000", "trainer.max_epochs=1", "trainer.accumulate_grad_batches=3", "trainer.log_every_n_steps=4"]
    train_here(compose_config(tmp_path / "single", args))
    train_here(compose_config(tmp_path / "replicas", [*args, "replicas=2"]))
    single, replica = (
        read_scalars(tmp_path / "single")["train/loss_step"],
        read_scalars(tmp_path / "replicas" / "replica_00")["train/loss_step"],
    )
    assert len(single) == 4 and [step for step, _ in replica] == [step for step, _ in single]
    assert [value for _, value in replica] == pytest.approx([value for _, value in single], rel=1e-4)


class DigitsLoggingMore(MulticlassMLP):
    """The digits model logging its accuracy per step and per epoch, and its own forward's output."""

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, logits, y = self.model_step(batch)
        self.train_acc(logits, y)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        self.log("train/acc", self.train_acc, on_step=True, on_epoch=True)
        self.log("train/forward_mean", self(batch[0]).mean(), on_step=False, on_epoch=True)  # a replica's own forward
        return loss


def test_metric_objects_keep_lightnings_names_and_each_stage_its_own_means(tmp_path: Path) -> None:
    """Non-fused RMSprop, validation twice an epoch, an accuracy object logged per step and per epoch."""
    train_here(
        compose_config(
            tmp_path,
            [
                "data=digits",
                "model=mlp_multiclass",
                "model._target_=test_replicas.DigitsLoggingMore",
                "optimizer=rmsprop",
                "trainer.max_epochs=1",
                "trainer.val_check_interval=0.5",
                "replicas=2",
            ],
        )
    )
    run = read_scalars(tmp_path)
    replicas = [read_scalars(tmp_path / f"replica_{k:02d}") for k in range(2)]
    assert len(run["val/loss"]) == 2 and "train/acc" not in run  # Lightning's names: train/acc_step, train/acc_epoch
    assert [step for step, _ in run["train/acc_epoch"]] == [step for step, _ in run["train/loss"]]  # once, with the epoch
    for tag in ("train/acc_epoch", "train/forward_mean"):
        assert run[tag][-1][1] == pytest.approx(statistics.mean(r[tag][-1][1] for r in replicas), rel=1e-6)
    assert len(replicas[0]["train/acc_step"]) > 0
