"""Modules as users write them: four experiments in a package of the user's own, through the template's paths.

``tests/user_styles/`` holds lightning-hydra-template's MNIST module and data module (on
scikit-learn's digits), a module from Lightning's docs (unprefixed names, its own optimizer),
a regression with MSE, BatchNorm and Dropout, and a module with manual optimization. None of
them imports ``optlab``; their configs join Hydra's search path as a user's would. The quick
suite runs one path per style and every failure mode; the slow one runs each style through
every path (run, sweep, parallel launcher, eval, resume, CSV, replicas).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir

from optlab.config_checks import check_config, check_evaluation_config
from optlab.errors import ConfigError, UserError
from optlab.evaluate import evaluate
from optlab.history import read_history
from optlab.results import read_result
from optlab.runner import execute
from optlab.train import train

from conftest import CONFIG_DIR, ROOT, job_dirs, read_scalars, run_train

STYLES = ROOT / "tests" / "user_styles"
SEARCHPATH = f"hydra.searchpath=[file://{STYLES / 'configs'}]"
QUICK = ["trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=0"]
ENV = {"PYTHONPATH": str(STYLES)}  # the user's package is importable, as one beside train.py is


def user_command(args: list[str], cwd: Path, script: str = "train.py"):  # noqa: ANN201
    """``python train.py [-m] <the user's configs on the search path> ARGS``."""
    flags = [arg for arg in args if arg == "-m"]
    overrides = [arg for arg in args if arg != "-m"]
    return run_train([*flags, SEARCHPATH, *overrides] if script == "train.py" else overrides, cwd=cwd, env=ENV, script=script)


def last_line(result) -> str:  # noqa: ANN001
    return (result.stdout + result.stderr).strip().splitlines()[-1]


def compose_user(output_dir: Path, overrides: list[str], config: str = "train"):  # noqa: ANN201
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        quiet = ["callbacks.progress_bar=null"] if config == "train" else []
        return compose(
            config, overrides=[SEARCHPATH, f"paths.output_dir={output_dir}", f"paths.log_dir={output_dir}", *quiet, *overrides]
        )


@pytest.fixture
def user_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(STYLES))


def png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


def summary_rows(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "summary.csv").open() as stream:
        return list(csv.DictReader(stream))


# --- lightning-hydra-template's module and data module --------------------------------------


@pytest.fixture(scope="module")
def lht_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``-m optimizer=adam,sgd scheduler=cosine logger=csv hydra/launcher=parallel`` with the template's defaults."""
    work = tmp_path_factory.mktemp("lht")
    result = user_command(
        [
            "-m",
            "data=lht_digits",
            "model=lht_digits",
            "optimizer=adam,sgd",
            "scheduler=cosine",
            "logger=csv",
            "hydra/launcher=parallel",
            *QUICK,
            "hydra.sweep.dir=sweep",
        ],
        cwd=work,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return work


@pytest.mark.xdist_group("lht")
def test_lht_module_sweeps_the_optimizer_it_takes_with_its_scheduler_dict(lht_sweep: Path) -> None:
    jobs = job_dirs(lht_sweep / "sweep")
    assert [job.name.split("+optimizer-")[1].split("+")[0] for job in jobs] == ["adam", "sgd"]
    for job, optimizer in zip(jobs, (torch.optim.Adam, torch.optim.SGD), strict=True):
        # This test trusts the file it made: the module's hyper-parameters hold the factories it was given.
        checkpoint = torch.load(job / "checkpoints" / "last.ckpt", weights_only=False)
        assert checkpoint["hyper_parameters"]["optimizer"].func is optimizer  # each job really used its optimizer
        assert checkpoint["hyper_parameters"]["scheduler"].func is torch.optim.lr_scheduler.CosineAnnealingLR
        saved_state = checkpoint["optimizer_states"][0]["param_groups"][0]
        assert ("betas" in saved_state) == (optimizer is torch.optim.Adam) and ("nesterov" in saved_state) == (
            optimizer is torch.optim.SGD
        )
        # The module's scheduler dict ({"interval": "epoch", "monitor": "val/loss"}): stepped once an epoch.
        assert checkpoint["lr_schedulers"][0]["last_epoch"] == 2 and checkpoint["lr_schedulers"][0]["T_max"] == 2
        with (job / "csv" / "metrics.csv").open() as stream:
            assert {"val/loss", "val/acc", "train/loss", "test/acc"} <= set(next(csv.reader(stream)))
        header = (job / "train.log").read_text()
        assert f"optimizer  {optimizer.__name__.lower()}: torch.optim.{optimizer.__name__}(" in header
    rows = summary_rows(lht_sweep / "sweep")
    assert [row["status"] for row in rows] == ["ok", "ok"] and [row["epochs"] for row in rows] == ["2", "2"]
    assert rows[0]["val/loss"] != rows[1]["val/loss"]


@pytest.mark.xdist_group("lht")
def test_lht_checkpoint_evaluates_from_its_own_config_and_resumes(lht_sweep: Path) -> None:
    job = job_dirs(lht_sweep / "sweep")[1]
    checkpoint = job / "checkpoints" / "last.ckpt"
    # No data= or model=: eval.py builds the model from the run's saved config, net node included.
    evaluated = user_command([f"ckpt_path={checkpoint}", "hydra.run.dir=eval"], cwd=lht_sweep, script="eval.py")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    trained, scored = read_result(job), read_result(lht_sweep / "eval")
    assert trained is not None and scored is not None and scored.objective == "test/loss"
    for name in ("test/loss", "test/acc"):
        assert scored.metrics[name] == pytest.approx(trained.metrics[name], rel=1e-6)
    resumed = user_command(
        [
            "data=lht_digits",
            "model=lht_digits",
            "optimizer=sgd",
            "scheduler=cosine",
            "trainer.max_epochs=3",
            "callbacks.progress_bar.refresh_rate=0",
            f"ckpt_path={checkpoint}",
            "hydra.run.dir=resumed",
        ],
        cwd=lht_sweep,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert {record["epoch"] for record in read_history(lht_sweep / "resumed").stage_records("train")} == {2}


@pytest.mark.xdist_group("lht")
def test_compiled_weights_evaluate_and_resume_under_the_modules_own_names(
    lht_sweep: Path, user_package: None, tmp_path: Path
) -> None:
    """torch.compile saves the net's weights as ``net._orig_mod.*``; an uncompiled model (eval, resume) still loads them."""
    job = job_dirs(lht_sweep / "sweep")[0]
    checkpoint = torch.load(job / "checkpoints" / "last.ckpt", weights_only=False)
    checkpoint["state_dict"] = {
        name.replace("net.", "net._orig_mod.", 1): value for name, value in checkpoint["state_dict"].items()
    }
    compiled = tmp_path / "compiled.ckpt"
    torch.save(checkpoint, compiled)
    cfg = compose_user(
        tmp_path / "eval", [f"ckpt_path={compiled}", "data=lht_digits", "model=lht_digits", "scheduler=cosine"], config="eval"
    )
    scored = execute(evaluate, cfg, checks=check_evaluation_config)
    trained = read_result(job)
    assert trained is not None and scored.metrics["test/acc"] == pytest.approx(trained.metrics["test/acc"], rel=1e-6)
    # Resumed with model.compile=false (the default): Lightning's strict load takes the compiled names too.
    resume = ["data=lht_digits", "model=lht_digits", "optimizer=adam", "scheduler=cosine", "trainer.max_epochs=3"]
    resumed = execute(train, compose_user(tmp_path / "resumed", [*resume, f"ckpt_path={compiled}"]), checks=check_config)
    assert resumed.status == "ok" and resumed.epochs == 3
    assert {record["epoch"] for record in read_history(tmp_path / "resumed").stage_records("train")} == {2}


def test_a_sweep_over_an_optimizer_nested_in_the_model_config_is_refused_before_any_job(tmp_path: Path) -> None:
    result = user_command(
        ["-m", "data=lht_digits", "model=lht_digits_nested", "optimizer=adam,sgd", "hydra.sweep.dir=sweep"], cwd=tmp_path
    )
    assert result.returncode == 1
    assert last_line(result).endswith(
        "optimizer=adam,sgd sweeps optimizer=, which the model never receives: the model config "
        "sets its own (model.optimizer); every job would train the same model. Sweep the "
        "model's own settings instead (model.<key>=...)"
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "sweep").exists()


# --- Lightning's docs: unprefixed names, its own optimizer -----------------------------------


@pytest.fixture(scope="module")
def docs_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docs")


@pytest.mark.xdist_group("docs")
def test_docs_module_first_command_names_the_one_key_to_set(docs_work: Path) -> None:
    result = user_command(["data=docs_digits", "model=docs_digits", *QUICK, "hydra.run.dir=first"], cwd=docs_work)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert last_line(result) == (
        "optimized_metric='val/loss' is not valid: this run has not logged it by the end of epoch 1, "
        "when ModelCheckpoint looks for it; it logged: train_loss, val_acc, val_loss; "
        "set optimized_metric to one of those"
    )


@pytest.mark.xdist_group("docs")
def test_docs_module_sweep_ranks_plots_and_evaluates_its_own_names(docs_work: Path) -> None:
    result = user_command(
        [
            "-m",
            "data=docs_digits",
            "model=docs_digits",
            "optimized_metric=val_loss",
            "model.lr=0.001,0.01",
            *QUICK,
            "hydra.sweep.dir=sweep",
        ],
        cwd=docs_work,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = docs_work / "sweep"
    rows = summary_rows(sweep)
    assert [row["status"] for row in rows] == ["ok", "ok"] and [row["epochs"] for row in rows] == ["2", "2"]
    assert list(rows[0])[3:9] == ["val_loss", "val_acc", "test_loss", "test_acc", "train_loss", "best val_loss"]
    assert png_size(sweep / "comparison.png") == (1800, 480)  # val_loss, val_acc, train_loss: a panel each
    for job in job_dirs(sweep):
        history = read_history(job)
        best = torch.load(job / "checkpoints" / "best.ckpt", weights_only=True)
        assert best["epoch"] == min(range(2), key=lambda epoch: history.values("val_loss")[epoch])  # monitored: val_loss
        assert len(history.values("val_loss")) == 2  # no extra validation after fitting
    evaluated = user_command(
        [f"ckpt_path={job_dirs(sweep)[0]}/checkpoints/last.ckpt", "hydra.run.dir=eval"], cwd=docs_work, script="eval.py"
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    scored, trained = read_result(docs_work / "eval"), read_result(job_dirs(sweep)[0])
    assert scored is not None and trained is not None and scored.objective == "test_loss"
    assert scored.metrics["test_loss"] == pytest.approx(trained.metrics["test_loss"], rel=1e-6)


@pytest.mark.xdist_group("docs")
def test_an_optimizer_the_docs_module_never_receives_is_refused(docs_work: Path) -> None:
    swept = user_command(
        ["-m", "data=docs_digits", "model=docs_digits", "optimizer=adam,sgd", "hydra.sweep.dir=refused"], cwd=docs_work
    )
    assert swept.returncode == 1 and not (docs_work / "refused").exists()
    assert (
        "optimizer=adam,sgd sweeps optimizer=, which the model never receives: LitClassifier takes no optimizer argument"
        in last_line(swept)
    )
    single = user_command(["data=docs_digits", "model=docs_digits", "optimizer=sgd", "hydra.run.dir=single"], cwd=docs_work)
    assert single.returncode == 1 and "Traceback" not in single.stderr
    assert last_line(single).startswith(
        "optimizer='sgd' is not valid: the model never receives optimizer=: LitClassifier takes no optimizer argument"
    )
    assert not (docs_work / "single" / "checkpoints").exists()


def test_training_without_validation_works_and_a_validation_metric_is_one_line(tmp_path: Path, user_package: None) -> None:
    with pytest.raises(ConfigError) as caught:
        execute(
            train,
            compose_user(tmp_path / "default", ["data=docs_digits_train_only", "model=docs_digits", "trainer.max_epochs=1"]),
            checks=check_config,
        )
    assert str(caught.value).startswith(
        "optimized_metric='val/loss' is not valid: this run has not logged it; it logged: "
        "test_acc, test_loss, train_loss (DigitsTrainOnly has no val_dataloader"
    )
    result = execute(
        train,
        compose_user(
            tmp_path / "train",
            ["data=docs_digits_train_only", "model=docs_digits", "optimized_metric=train_loss", "trainer.max_epochs=1"],
        ),
        checks=check_config,
    )
    assert result.status == "ok" and result.metrics["test_acc"] > 0.3
    assert not read_history(tmp_path / "train").stage_records("validate")


def test_without_a_test_step_or_test_dataloader_a_run_trains_untested_and_eval_says_why(
    tmp_path: Path, user_package: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Lightning's ``trainer.fit`` needs no test: the run is a result, its closing block says why there was no test;
    ``eval.py``, whose job is the test, refuses in one line."""
    caplog.set_level(logging.INFO, logger="optlab")
    common = ["optimized_metric=val_loss", "trainer.max_epochs=1"]
    no_loader = execute(
        train,
        compose_user(tmp_path / "no_loader", ["data=docs_digits_fit_only", "model=docs_digits", *common]),
        checks=check_config,
    )
    assert no_loader.status == "ok" and not any(name.startswith("test") for name in no_loader.metrics)
    assert not read_history(tmp_path / "no_loader").stage_records("test")
    assert "test      none: DigitsFitOnly has no test_dataloader" in caplog.text
    no_step = execute(
        train, compose_user(tmp_path / "no_step", ["data=docs_digits", "model=docs_fit_only", *common]), checks=check_config
    )
    assert no_step.status == "ok" and "val_loss" in no_step.metrics
    assert "test      none: FitOnlyClassifier has no test_step" in caplog.text
    checkpoint = f"ckpt_path={tmp_path}/no_step/checkpoints/last.ckpt"
    cfg = compose_user(tmp_path / "eval", [checkpoint, "data=docs_digits", "model=docs_fit_only"], config="eval")
    with pytest.raises(UserError) as caught:
        execute(evaluate, cfg, checks=check_evaluation_config)
    assert str(caught.value) == (
        "eval.py cannot test: FitOnlyClassifier has no test_step "
        "(Lightning's Trainer.test needs a test_step and a test_dataloader)"
    )
    assert read_result(tmp_path / "eval").status == "failed"


# --- a regression with BatchNorm and Dropout; manual optimization ------------------------------


def test_regression_trains_evaluates_and_refuses_replicas_in_one_line(tmp_path: Path, user_package: None) -> None:
    trained = execute(
        train, compose_user(tmp_path / "run", ["data=diabetes", "model=regression", "trainer.max_epochs=2"]), checks=check_config
    )
    assert trained.status == "ok" and "test/mae" in trained.metrics and not any("acc" in name for name in trained.metrics)
    history = read_history(tmp_path / "run")
    assert history.tags_of("validate") == ["val/loss", "val/mae"] and history.tags_of("test") == ["test/loss", "test/mae"]
    cfg = compose_user(
        tmp_path / "eval", [f"ckpt_path={tmp_path}/run/checkpoints/last.ckpt", "data=diabetes", "model=regression"], config="eval"
    )
    scored = execute(evaluate, cfg, checks=check_evaluation_config)
    assert scored.objective == "test/loss" and scored.metrics["test/loss"] == pytest.approx(
        trained.metrics["test/loss"], rel=1e-6
    )
    with pytest.raises(UserError, match=r"^replicas=3: Regressor has buffers \(net.1.running_mean, "):
        execute(
            train, compose_user(tmp_path / "replicas", ["data=diabetes", "model=regression", "replicas=3"]), checks=check_config
        )


def test_a_regression_whose_loss_ends_not_finite_is_recorded_diverged(tmp_path: Path, user_package: None) -> None:
    # MSE has no clamp: SGD at lr=10 runs on to NaN without an exception, and the run is no result.
    overrides = ["data=diabetes", "model=regression", "optimizer=sgd", "optimizer.lr=10", "trainer.max_epochs=2"]
    result = execute(train, compose_user(tmp_path, overrides), checks=check_config)
    losses = [record["val/loss"] for record in read_history(tmp_path).stage_records("validate")]
    assert not math.isfinite(losses[-1])  # the oracle: what the run itself logged
    assert result.status == "diverged" and result.error.startswith("training diverged: val/loss became nan at epoch ")
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "diverged"


def test_manual_optimization_trains_evaluates_and_refuses_replicas_in_one_line(tmp_path: Path, user_package: None) -> None:
    trained = execute(
        train, compose_user(tmp_path / "run", ["data=manual_digits", "model=manual", "trainer.max_epochs=2"]), checks=check_config
    )
    assert trained.status == "ok" and trained.epochs == 2
    cfg = compose_user(
        tmp_path / "eval",
        [f"ckpt_path={tmp_path}/run/checkpoints/last.ckpt", "data=manual_digits", "model=manual"],
        config="eval",
    )
    scored = execute(evaluate, cfg, checks=check_evaluation_config)
    assert scored.metrics["test/acc"] == pytest.approx(trained.metrics["test/acc"], rel=1e-6)
    with pytest.raises(UserError, match=r"^replicas=3: ManualClassifier has no model_step\(batch\) to vectorise"):
        execute(
            train, compose_user(tmp_path / "replicas", ["data=manual_digits", "model=manual", "replicas=3"]), checks=check_config
        )


# --- mistakes, each one line ------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["model=docs_digits", "data=docs_digits", "model._target_=docs_style.digits.LitClasifier"],
            "model._target_='docs_style.digits.LitClasifier' is not valid: docs_style.digits has no LitClasifier "
            "(did you mean docs_style.digits.LitClassifier?)",
        ),
        (
            ["model=lht_digits", "data=lht_digits", "model.net._target_=lht_style.components.dense_net.DenseNet"],
            "model.net._target_='lht_style.components.dense_net.DenseNet' is not valid: "
            "lht_style.components.dense_net has no DenseNet",
        ),
        (
            ["model=docs_digits", "data=docs_digits", "model._target_=docs_styles.digits.LitClassifier"],
            "model._target_='docs_styles.digits.LitClassifier' is not valid: No module named 'docs_styles'",
        ),
        (
            ["model=lht_digits", "data=lht_digits", "optimizer=sgd", "+optimizer.nesterov=maybe"],
            "optimizer.nesterov='maybe' is not valid: SGD expects true or false",
        ),
    ],
    ids=["misspelt-class", "misspelt-nested-class", "missing-package", "optimizer-flag-of-the-wrong-type"],
)
def test_mistakes_name_what_is_missing_in_one_line(
    tmp_path: Path, user_package: None, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        execute(train, compose_user(tmp_path, overrides), checks=check_config)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert not (tmp_path / "checkpoints").exists()


# --- the full matrix: every style through every path (slow) -----------------------------------

STYLE_CONFIGS = {
    "lht": ["data=lht_digits", "model=lht_digits"],
    "docs": ["data=docs_digits", "model=docs_digits", "optimized_metric=val_loss"],
    "regression": ["data=diabetes", "model=regression"],
    "manual": ["data=manual_digits", "model=manual"],
}
REPLICAS_REFUSAL = {  # lightning-hydra-template's module trains with replicas; the others are refused in one line
    "docs": "replicas=3: LitClassifier has no model_step(batch)",
    "regression": "replicas=3: Regressor has buffers",
    "manual": "replicas=3: ManualClassifier has no model_step(batch)",
}


@pytest.mark.slow
@pytest.mark.parametrize("style", list(STYLE_CONFIGS))
def test_every_style_through_every_path(style: str, tmp_path: Path) -> None:
    config = STYLE_CONFIGS[style]
    sweep_key = "model.lr=0.001,0.01" if style == "docs" else "optimizer=adam,sgd"
    for launcher in ("basic", "parallel"):
        result = user_command(
            ["-m", *config, sweep_key, f"hydra/launcher={launcher}", "logger=csv", *QUICK, f"hydra.sweep.dir={launcher}"],
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        rows = summary_rows(tmp_path / launcher)
        assert [row["status"] for row in rows] == ["ok", "ok"] and all(row["epochs"] == "2" for row in rows)
        assert all((job / "csv" / "metrics.csv").is_file() for job in job_dirs(tmp_path / launcher))
    basic, parallel = summary_rows(tmp_path / "basic"), summary_rows(tmp_path / "parallel")
    metric = "val_loss" if style == "docs" else "val/loss"
    assert [row[metric] for row in basic] == [row[metric] for row in parallel]  # the same numbers on either launcher
    job = job_dirs(tmp_path / "basic")[0]
    evaluated = user_command([f"ckpt_path={job}/checkpoints/last.ckpt", "hydra.run.dir=eval"], cwd=tmp_path, script="eval.py")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    scored, trained = read_result(tmp_path / "eval"), read_result(job)
    assert scored is not None and trained is not None and scored.objective is not None
    assert scored.metrics[scored.objective] == pytest.approx(trained.metrics[scored.objective], rel=1e-6)
    resume_args = [
        *config,
        "trainer.max_epochs=3",
        "callbacks.progress_bar.refresh_rate=0",
        f"ckpt_path={job}/checkpoints/last.ckpt",
        "hydra.run.dir=resumed",
    ] + (["optimizer=adam"] if style != "docs" else ["model.lr=0.001"])
    resumed = user_command(resume_args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert {record["epoch"] for record in read_history(tmp_path / "resumed").stage_records("train")} == {2}
    replicas = user_command([*config, "replicas=3", *QUICK, "hydra.run.dir=replicas"], cwd=tmp_path)
    if style not in REPLICAS_REFUSAL:
        assert replicas.returncode == 0, replicas.stderr[-3000:]
        each = [read_result(tmp_path / "replicas" / f"replica_{k:02d}") for k in range(3)]
        assert all(result is not None and result.status == "ok" for result in each)
        return
    assert replicas.returncode == 1 and "Traceback" not in replicas.stderr
    assert last_line(replicas).startswith(REPLICAS_REFUSAL[style])


@pytest.mark.slow
def test_lht_compile_true_trains_evaluates_and_resumes(tmp_path: Path) -> None:
    """``compile: true`` compiles the net in ``setup``: its checkpoint holds ``_orig_mod`` names, and both paths load it."""
    args = [
        "data=lht_digits",
        "model=lht_digits",
        "model.compile=true",
        "trainer.max_epochs=1",
        "callbacks.progress_bar.refresh_rate=0",
    ]
    trained = user_command([*args, "hydra.run.dir=run"], cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert any("_orig_mod." in name for name in state)
    evaluated = user_command(
        [f"ckpt_path={tmp_path}/run/checkpoints/last.ckpt", "hydra.run.dir=eval"], cwd=tmp_path, script="eval.py"
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    scored, run = read_result(tmp_path / "eval"), read_result(tmp_path / "run")
    assert scored is not None and run is not None
    assert scored.metrics["test/acc"] == pytest.approx(run.metrics["test/acc"], rel=1e-5)
    resumed = user_command(
        [*args, "trainer.max_epochs=2", f"ckpt_path={tmp_path}/run/checkpoints/last.ckpt", "hydra.run.dir=resumed"], cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Resumed with the other setting: compiled weights into the plain net, then plain weights into a compiled net.
    plain = [arg for arg in args if arg != "model.compile=true"]
    uncompiled = user_command(
        [*plain, "trainer.max_epochs=2", f"ckpt_path={tmp_path}/run/checkpoints/last.ckpt", "hydra.run.dir=uncompiled"],
        cwd=tmp_path,
    )
    assert uncompiled.returncode == 0, uncompiled.stderr[-3000:]
    state = torch.load(tmp_path / "uncompiled" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert not any("_orig_mod." in name for name in state)
    recompiled = user_command(
        [*args, "trainer.max_epochs=3", f"ckpt_path={tmp_path}/uncompiled/checkpoints/last.ckpt", "hydra.run.dir=recompiled"],
        cwd=tmp_path,
    )
    assert recompiled.returncode == 0, recompiled.stderr[-3000:]
    assert {record["epoch"] for record in read_history(tmp_path / "recompiled").stage_records("train")} == {2}


# --- the two wings: the machinery runs without the notebook's experiment --------------------


def test_the_machinery_never_imports_the_copy_side() -> None:
    import ast

    machinery = [*(ROOT / "src" / "optlab").rglob("*.py"), *(ROOT / "src" / "hydra_plugins").rglob("*.py")]
    arrows = []
    for path in machinery:
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            arrows += [f"{path.relative_to(ROOT)}: {name}" for name in names if name.split(".")[0] == "experiment"]
    assert len(machinery) > 20 and arrows == []


@pytest.mark.slow
def test_a_user_experiment_runs_with_the_notebooks_experiment_gone(tmp_path: Path) -> None:
    """``experiment`` made unimportable: a run, its sweep report and eval.py of the user's own modules still work."""
    script = (
        "import runpy, sys; sys.modules['experiment'] = None; script = sys.argv[1]; sys.argv = sys.argv[1:]; "
        "runpy.run_path(script, run_name='__main__')"
    )
    env = {**os.environ, "PYTHONPATH": str(STYLES), "PYTHONWARNINGS": "ignore"}

    def without_experiment(entry: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", script, str(ROOT / entry), *args]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    args = [SEARCHPATH, "data=docs_digits", "model=docs_digits", "optimized_metric=val_loss", *QUICK]
    swept = without_experiment("train.py", "-m", *args, "model.lr=0.001,0.01", "hydra.sweep.dir=sweep")
    assert swept.returncode == 0, swept.stderr[-3000:]
    assert [row["status"] for row in summary_rows(tmp_path / "sweep")] == ["ok", "ok"]
    checkpoint = job_dirs(tmp_path / "sweep")[0] / "checkpoints" / "last.ckpt"
    evaluated = without_experiment("eval.py", f"ckpt_path={checkpoint}", "hydra.run.dir=eval")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]


@pytest.mark.slow
def test_the_protocol_trains_a_model_with_buffers_one_seed_a_job_and_counts_diverged_seeds(
    tmp_path: Path, user_package: None
) -> None:
    grid = ["hydra.sweeper.lr_grid.low=1e-3", "hydra.sweeper.lr_grid.high=10", "hydra.sweeper.lr_grid.points=3"]
    seeds = ["hydra.sweeper.optimizers=[adam,sgd]", "hydra.sweeper.tuning_seeds=2", "hydra.sweeper.confirm_seeds=2"]
    # The diabetes module has its own validation split: it takes no val_fraction.
    task = ["experiment=optimizer_protocol", "data=diabetes", "model=regression", "~data.val_fraction"]
    result = user_command([*task, *grid, *seeds, *QUICK], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "each seed its own job, since replicas=2: Regressor has buffers" in result.stdout + result.stderr
    sweep_dir = tmp_path / "logs" / "protocols" / "optimizer_protocol"
    diverged: dict[tuple[str, str], int] = {}
    for overrides_file in sweep_dir.glob("*/.hydra/overrides.yaml"):
        overrides = dict(item.split("=", 1) for item in yaml.safe_load(overrides_file.read_text()) if "=" in item)
        assert "replicas" not in overrides
        if overrides["seed"] in ("2020", "2021"):  # the oracle: the tuning jobs' last val/loss in TensorBoard
            finals = [value for _, value in read_scalars(overrides_file.parent.parent).get("val/loss", [])]
            key = (overrides["optimizer"], overrides["optimizer.lr"])
            diverged[key] = diverged.get(key, 0) + (not finals or not math.isfinite(finals[-1]))
    assert diverged[("sgd", "10")] == 2  # MSE without a clamp runs on to NaN
    with (sweep_dir / "protocol.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    for row in rows:
        if row["stage"] == "tune":
            assert int(row["diverged"]) == diverged[(row["optimizer"], f"{float(row['lr']):g}")], row
    (sgd,) = [row for row in rows if row["stage"] == "confirm" and row["optimizer"] == "sgd"]
    assert diverged[("sgd", f"{float(sgd['lr']):g}")] == 0  # a diverged seed scores as the worst: never chosen
