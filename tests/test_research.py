"""Research features: real data, weight initialisation, search, evaluation, launchers, everyday comfort."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from experiment.tabular import BreastCancerDataModule, CsvDataModule
from optlab.building import build
from optlab.errors import ConfigError, InvalidArgument
from optlab.results import read_result

from conftest import compose_config, read_scalars, run_train, train_here

QUICK = [
    "trainer.max_epochs=1",
    "data.n_samples=400",
    "print_config=false",
    "callbacks.progress_bar=null",
    "+trainer.enable_progress_bar=false",
]


def test_breast_cancer_split_is_stratified_and_standardised_on_training_rows_only() -> None:
    datamodule = BreastCancerDataModule()
    (x_train, y_train), (x_held, y_held) = datamodule.splits["train"], datamodule.splits["held_out"]
    assert x_train.shape == (455, 30) and x_held.shape == (114, 30) and datamodule.n_features == 30
    # Oracle: scikit-learn's own stratified split and the training rows' statistics.
    x, y = load_breast_cancer(return_X_y=True)
    raw_train, raw_held, label_train, _ = train_test_split(x, y, train_size=0.8, stratify=y, random_state=2020)
    mean, std = raw_train.mean(axis=0), raw_train.std(axis=0)
    assert np.allclose(x_train.numpy(), (raw_train - mean) / std, atol=1e-5)
    assert np.allclose(x_held.numpy(), (raw_held - mean) / std, atol=1e-5)
    assert torch.equal(y_train.flatten(), torch.tensor(label_train, dtype=torch.float32))
    assert abs(y_train.mean().item() - y_held.mean().item()) < 0.01  # class balance kept by stratification


def test_breast_cancer_reaches_95_percent_in_20_epochs(tmp_path: Path) -> None:
    train_here(compose_config(tmp_path, ["data=breast_cancer", "trainer.max_epochs=20", "print_config=false"]))
    result = read_result(tmp_path)
    assert result is not None and result.metrics["test/acc"] >= 0.95
    assert read_scalars(tmp_path)["train/loss_epoch"][-1][1] < read_scalars(tmp_path)["train/loss_epoch"][0][1]


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as stream:
        csv.writer(stream).writerows([header, *rows])
    return path


def blobs_csv(path: Path, n: int = 300) -> Path:
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=n, centers=2, n_features=5, random_state=0)
    return write_csv(path, [f"f{i}" for i in range(5)] + ["label"], [[*row, int(label)] for row, label in zip(x, y)])


def test_csv_data_trains_with_input_size_from_the_file(tmp_path: Path) -> None:
    data = blobs_csv(tmp_path / "blobs.csv")
    train_here(
        compose_config(
            tmp_path / "run", ["data=csv", f"data.path={data}", "data.target=label", "trainer.max_epochs=3", "print_config=false"]
        )
    )
    result = read_result(tmp_path / "run")
    assert result is not None and result.metrics["test/acc"] > 0.9
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["hyper_parameters"]["input_size"] == 5


@pytest.mark.parametrize(
    "content, target, key, fragment",
    [
        (None, "label", "path", "expected an existing CSV file"),
        ([["a", "b"], [1, 0], [2, 1]], "label", "target", "expected one of the CSV's columns: a, b"),
        ([["a", "label"], [1, 0], ["x", 1]], "label", "path", "column 'a' is not numeric (line 3: 'x')"),
        ([["a", "label"], [1, 0], [2, 1], [3, 2]], "label", "target", "found 3: 0, 1, 2"),
    ],
    ids=["missing-file", "missing-column", "non-numeric", "not-binary"],
)
def test_csv_problems_are_named(tmp_path: Path, content: list[list[object]] | None, target: str, key: str, fragment: str) -> None:
    path = tmp_path / "data.csv"
    if content is not None:
        write_csv(path, [str(c) for c in content[0]], content[1:])
    with pytest.raises(InvalidArgument) as caught:  # the data module names its own argument...
        CsvDataModule(path=str(path), target=target)
    assert str(caught.value).startswith(f"{key}=") and fragment in str(caught.value)
    assert isinstance(caught.value, ValueError)  # ...as a plain ValueError, usable without this template
    with pytest.raises(ConfigError, match=f"^data.{key}="):  # built from the config, the key is the config's
        build(OmegaConf.create({"_target_": "experiment.tabular.CsvDataModule", "path": str(path), "target": target}), "data")


def first_layer(tmp_path: Path, overrides: list[str]) -> torch.nn.Linear:
    cfg = compose_config(tmp_path, overrides)
    torch.manual_seed(cfg.seed)
    model = build(cfg.model, "model", input_size=64, _convert_="all")
    return model.net[0]


@pytest.mark.parametrize(
    "scheme, check",
    [
        ("normal", lambda w: abs(w.std().item() - 0.01) < 0.001 and abs(w.mean().item()) < 0.001),
        ("uniform", lambda w: w.min().item() >= -0.05 and w.max().item() <= 0.05 and w.max().item() > 0.049),
        ("xavier_uniform", lambda w: w.abs().max().item() <= math.sqrt(6 / (64 + 256)) and w.abs().max().item() > 0.13),
        ("kaiming_normal", lambda w: abs(w.std().item() - math.sqrt(2 / 64)) < 0.01),
    ],
)
def test_weight_initialisation_schemes(tmp_path: Path, scheme: str, check) -> None:  # noqa: ANN001
    layer = first_layer(tmp_path, [f"model.init={scheme}"])
    assert check(layer.weight.detach())
    assert torch.count_nonzero(layer.bias) == 0
    again = first_layer(tmp_path, [f"model.init={scheme}"])
    other_seed = first_layer(tmp_path, [f"model.init={scheme}", "seed=3"])
    assert torch.equal(layer.weight, again.weight) and not torch.equal(layer.weight, other_seed.weight)


def test_default_initialisation_is_pytorchs_and_params_are_config_values(tmp_path: Path) -> None:
    torch.manual_seed(2020)
    expected = torch.nn.Linear(64, 256)
    assert torch.equal(first_layer(tmp_path, []).weight, expected.weight)
    wide = first_layer(tmp_path, ["model.init=normal", "model.init_params.normal.std=0.5"])
    assert abs(wide.weight.std().item() - 0.5) < 0.05
    # The model checks its own arguments; building it from config names the full key.
    with pytest.raises(ConfigError, match="model.init='orthogonal' is not valid: expected one of default, normal"):
        train_here(compose_config(tmp_path / "orthogonal", ["model.init=orthogonal"]))
    with pytest.raises(ConfigError, match=r"model.init_params.normal=\{'mean': 0.0, 'std': 0.01, 'gain': 2\} is not valid"):
        train_here(compose_config(tmp_path / "gain", ["model.init=normal", "+model.init_params.normal.gain=2"]))


def test_optuna_search_writes_its_results_and_the_report(tmp_path: Path) -> None:
    result = run_train(["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=3", *QUICK], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "logs" / "multiruns").iterdir()
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["best_params"]["optimizer"] in {"adam", "sgd", "rmsprop"}
    assert 1e-4 <= results["best_params"]["optimizer.lr"] <= 0.1
    with (sweep_dir / "summary.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 3 and all("optimizer.lr=" in row["overrides"] for row in rows)
    best_row = min((row for row in rows if row["status"] == "ok"), key=lambda row: float(row["best val/loss"]))
    trial_losses = [read_scalars(sweep_dir / row["job"])["val/loss"][-1][1] for row in rows if row["status"] == "ok"]
    assert results["best_value"] == pytest.approx(min(trial_losses), rel=1e-6)
    # The report's best trial is Optuna's: same parameters, same value.
    assert f"optimizer={results['best_params']['optimizer']}" in best_row["overrides"]
    assert float(best_row["best val/loss"]) == pytest.approx(results["best_value"], rel=1e-6)


def test_eval_reproduces_the_training_runs_test_metrics_and_files_itself_under_the_run(tmp_path: Path) -> None:
    trained = run_train(["trainer.max_epochs=2", "hydra.run.dir=run", "callbacks.progress_bar.refresh_rate=0"], cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    evaluated = run_train(["ckpt_path=run/checkpoints/last.ckpt"], cwd=tmp_path, script="eval.py")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    # Inside the evaluated run: TensorBoard lists it under that run, not among the training runs.
    (evaluation_dir,) = (tmp_path / "run" / "eval").iterdir()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]
    training, evaluation = read_result(tmp_path / "run"), read_result(evaluation_dir)
    assert training is not None and evaluation is not None
    for metric in ("test/acc", "test/loss"):
        assert evaluation.metrics[metric] == pytest.approx(training.metrics[metric], rel=1e-6)
    assert read_scalars(evaluation_dir)["test/acc"][-1][1] == pytest.approx(training.metrics["test/acc"])
    assert f"acc {training.metrics['test/acc']:.6g}" in evaluated.stdout


@pytest.mark.slow  # the same submitit machinery runs on a real SLURM in the quick suite (test_slurm.py)
def test_submitit_local_launcher_runs_a_small_sweep(tmp_path: Path) -> None:
    result = run_train(["-m", "optimizer=adam,sgd", "hydra/launcher=submitit_local", *QUICK], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "logs" / "multiruns").iterdir()
    with (sweep_dir / "summary.csv").open() as stream:
        assert [row["status"] for row in csv.DictReader(stream)] == ["ok", "ok"]


def test_debug_configs_schedulers_early_stopping_and_csv_logger(tmp_path: Path) -> None:
    fast = tmp_path / "fast"
    train_here(compose_config(fast, ["debug=fast_dev_run", "print_config=false"]))
    assert not list(fast.glob("events.out.tfevents.*"))  # fast_dev_run writes no logs

    cosine = tmp_path / "cosine"
    train_here(compose_config(cosine, ["scheduler=cosine", "trainer.max_epochs=3", "data.n_samples=400", "print_config=false"]))
    scheduler_state = torch.load(cosine / "checkpoints" / "last.ckpt", weights_only=True)["lr_schedulers"][0]
    assert scheduler_state["_last_lr"][0] == pytest.approx(0.001 * (1 + math.cos(math.pi * 3 / 3)) / 2, abs=1e-12)

    stopped = tmp_path / "stopped"
    train_here(
        compose_config(
            stopped,
            [
                "callbacks=early_stopping",
                "callbacks.early_stopping.patience=1",
                "callbacks.progress_bar=null",
                "callbacks.early_stopping.min_delta=10",
                "trainer.max_epochs=10",
                "data.n_samples=400",
                "print_config=false",
            ],
        )
    )
    assert len(read_scalars(stopped)["val/loss"]) == 2  # no epoch improves val/loss by 10: stop after patience

    csv_run = tmp_path / "csv"
    train_here(compose_config(csv_run, ["logger=csv", "trainer.max_epochs=2", "data.n_samples=400", "print_config=false"]))
    with (csv_run / "csv" / "metrics.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert sum(1 for row in rows if row.get("train/loss_epoch")) == 2 and any(row.get("test/acc") for row in rows)
