"""Your own experiment: the README's steps followed literally, in a scratch copy of the template.

A user's model and data module (the digits file, copied into a package of the user's own,
outside ``src/optlab``, with standard ``DataLoader``s) run through ``train.py``, a sweep on
the parallel launcher, ``eval.py`` and a resume; what they wrote is read back from event
files, ``result.json`` and ``summary.csv``.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from optlab.config_checks import check_config
from optlab.errors import ConfigError, UserError
from optlab.history import read_history
from optlab.results import read_result
from optlab.runner import execute
from optlab.train import train

from conftest import ROOT, hparams_session, job_dirs, read_scalars, run_train

# Its module-scoped fixture runs once: the file's tests share one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("own_experiment")

QUICK = ["trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=0"]


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def code_blocks(section: str) -> list[tuple[str, str]]:
    """``(language, code)`` of each fenced block, dedented as the list items indent them."""
    return [
        (language, textwrap.dedent(code))
        for _, language, code in re.findall(r"^( *)```(\w+)\n(.*?)^\1```", section, flags=re.MULTILINE | re.DOTALL)
    ]


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python <script> ARGS`` in the user's copy: its own train.py or eval.py, run as a process of its own."""
    assert command[0] == sys.executable
    return run_train(command[2:], cwd=cwd, script=cwd / command[1])


@pytest.fixture(scope="module")
def user_checkout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[str]]]:
    """A copy of the template with the README's steps done in it; the step-3 commands, as argument lists."""
    work = tmp_path_factory.mktemp("clone")
    for name in ("train.py", "eval.py"):
        shutil.copy(ROOT / name, work / name)
    shutil.copytree(ROOT / "configs", work / "configs")
    shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    commands = []
    for language, code in code_blocks(readme_section("Your own experiment")):
        first_line = code.splitlines()[0]
        if language == "yaml" and first_line.startswith("# configs/"):
            path = work / first_line.removeprefix("# ")
            path.write_text(code)
        elif language == "bash":
            for line in code.splitlines():
                if line.startswith("python train.py"):
                    commands.append(line.split()[2:])
                elif line.strip():
                    subprocess.run(["bash", "-c", line], cwd=work, check=True)
    assert (work / "myproject" / "digits.py").is_file() and len(commands) == 2
    return work, commands


@pytest.fixture(scope="module")
def user_run(user_checkout: tuple[Path, list[list[str]]]) -> tuple[Path, subprocess.CompletedProcess[str]]:
    work, (single, _) = user_checkout
    result = run(
        [sys.executable, "train.py", *single, *QUICK, "logger=many", "hydra.run.dir=run"], cwd=work
    )  # TensorBoard and CSV
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "run", result


def test_the_users_model_trains_with_what_its_data_module_knows(user_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    run_dir, result = user_run
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    # input_size and num_classes came from the data module's attributes; nothing else was added.
    assert checkpoint["hyper_parameters"] == {"input_size": 64, "num_classes": 10, "hidden_sizes": [256]}
    scalars = read_scalars(run_dir)
    outcome = read_result(run_dir)
    assert outcome is not None and outcome.status == "ok"
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc"} <= set(scalars)
    assert [step for step, _ in scalars["val/acc"]] == [step for step, _ in scalars["train/loss"]]
    assert len(scalars["val/acc"]) == 2
    for tag in ("test/acc", "test/loss", "val/loss"):
        assert outcome.metrics[tag] == pytest.approx(scalars[tag][-1][1], rel=1e-6)
    assert outcome.metrics["test/acc"] > 0.8
    # HParams: the run's own settings, from its own configs.
    hparams = hparams_session(run_dir)
    assert hparams["model/hidden_sizes"] == "[256]" and hparams["data/batch_size"] == 16 and hparams["optimizer"] == "adam"
    # The epoch table's columns are the metrics this model logs.
    header = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("epoch "))
    assert header.split() == ["epoch", "train/loss", "train/acc", "val/loss", "val/acc"]
    assert f"acc {outcome.metrics['test/acc']:.6g}" in result.stdout
    with (run_dir / "csv" / "metrics.csv").open() as stream:  # the CSV logger holds the same numbers
        test_row = next(row for row in csv.DictReader(stream) if row.get("test/acc"))
    assert float(test_row["test/acc"]) == pytest.approx(outcome.metrics["test/acc"], rel=1e-6)


def test_eval_and_resume_run_the_users_model(
    user_checkout: tuple[Path, list[list[str]]], user_run: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    work, (single, _) = user_checkout
    run_dir, _ = user_run
    evaluated = run(
        [sys.executable, "eval.py", *single, f"ckpt_path={run_dir}/checkpoints/last.ckpt", "hydra.run.dir=eval"], cwd=work
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    trained, scored = read_result(run_dir), read_result(work / "eval")
    assert trained is not None and scored is not None
    assert scored.metrics["test/acc"] == pytest.approx(trained.metrics["test/acc"], rel=1e-6)

    resumed = run(
        [
            sys.executable,
            "train.py",
            *single,
            "trainer.max_epochs=3",
            "callbacks.progress_bar.refresh_rate=0",
            f"ckpt_path={run_dir}/checkpoints/last.ckpt",
            "hydra.run.dir=resumed",
        ],
        cwd=work,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    epochs = read_history(work / "resumed").values("epoch")
    assert set(epochs) >= {2} and min(epochs) == 2  # only the third epoch was trained


def test_a_three_optimizer_sweep_of_the_users_experiment(user_checkout: tuple[Path, list[list[str]]]) -> None:
    work, (_, sweep) = user_checkout
    result = run([sys.executable, "train.py", *sweep, *QUICK, "hydra/launcher=parallel", "hydra.sweep.dir=sweep"], cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_dir = work / "sweep"
    with (sweep_dir / "summary.csv").open() as stream:
        rows = {row["job"]: row for row in csv.DictReader(stream)}
    assert [job.name for job in job_dirs(sweep_dir)] == sorted(rows)
    assert len(rows) == 3 and {row["status"] for row in rows.values()} == {"ok"}
    for name, row in rows.items():
        scalars = read_scalars(sweep_dir / name)
        for tag in ("train/loss", "val/acc", "test/acc"):  # the report's columns are the model's own metrics
            assert float(row[tag]) == pytest.approx(scalars[tag][-1][1], rel=1e-6)
        assert float(row["best val/loss"]) == pytest.approx(min(value for _, value in scalars["val/loss"]), rel=1e-6)
    assert (sweep_dir / "comparison.png").stat().st_size > 10_000
    assert "sweep sweep: 3 jobs, 3 ok. Best first by val/loss" in result.stdout


def compose_in(work: Path, output_dir: Path, overrides: list[str]):  # noqa: ANN201
    """The config the user's ``train.py`` would get, from the user's own ``configs/``."""
    with initialize_config_dir(str(work / "configs"), version_base="1.3"):
        return compose(
            "train",
            overrides=[
                f"paths.output_dir={output_dir}",
                f"paths.log_dir={output_dir}",
                "callbacks.progress_bar=null",
                *overrides,
            ],
        )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["model=mydigits", "data=blobs"],
            "model.num_classes=None is not valid: MulticlassMLP requires num_classes, which neither the model config sets "
            "nor BlobDataModule has as an attribute: set model.num_classes=..., or give the data module an attribute num_classes",
        ),
        (
            ["model=mydigits", "data=mydigits", "model.hidden_sizes=[32]", "ckpt_path={run}/checkpoints/last.ckpt"],
            "ckpt_path='{run}/checkpoints/last.ckpt' is not valid: its net.0.weight has shape [256, 64], this run's model "
            "has [32, 64]: it was trained with model.hidden_sizes=[256]",
        ),
        (
            ["model=mydigits", "data=mydigits", "model._target_=myproject.digits.Missing"],
            "model._target_='myproject.digits.Missing' is not valid",
        ),
    ],
    ids=["data-lacks-an-attribute", "checkpoint-of-another-shape", "unknown-class"],
)
def test_what_does_not_fit_is_one_line(
    user_checkout: tuple[Path, list[list[str]]],
    user_run: tuple[Path, object],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    overrides: list[str],
    message: str,
) -> None:
    work, _ = user_checkout
    run_dir, _ = user_run
    monkeypatch.syspath_prepend(str(work))  # as train.py's own directory is on the path
    cfg = compose_in(work, tmp_path, [item.format(run=run_dir) for item in overrides])
    with pytest.raises(ConfigError) as caught:
        execute(train, cfg, checks=check_config)
    assert str(caught.value).startswith(message.format(run=run_dir)) and "\n" not in str(caught.value)
    assert not (tmp_path / "checkpoints").exists()  # refused before training


def test_a_module_without_what_lightning_needs_is_one_line(
    user_checkout: tuple[Path, list[list[str]]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A LightningModule with no configure_optimizers and no optimizer argument: Lightning's own complaint, on one line."""
    work, _ = user_checkout
    (work / "myproject" / "unfinished.py").write_text(
        textwrap.dedent("""
        import lightning as L
        import torch


        class Unfinished(L.LightningModule):
            def __init__(self, input_size: int) -> None:
                super().__init__()
                self.layer = torch.nn.Linear(input_size, 10)

            def training_step(self, batch, batch_idx):
                x, y = batch
                return torch.nn.functional.cross_entropy(self.layer(x), y)
    """)
    )
    monkeypatch.syspath_prepend(str(work))
    cfg = compose_in(
        work,
        tmp_path,
        ["data=mydigits", "model=mydigits", "model._target_=myproject.unfinished.Unfinished", "~model.hidden_sizes"],
    )
    with pytest.raises(UserError) as caught:
        execute(train, cfg, checks=check_config)
    assert str(caught.value).startswith("model (Unfinished): No `configure_optimizers()` method defined.")
    assert "\n" not in str(caught.value)


def test_the_shipped_digits_experiment_reaches_095_test_accuracy_with_adam(tmp_path: Path) -> None:
    from conftest import compose_config, train_here

    outcome = train_here(compose_config(tmp_path, ["data=digits", "model=mlp_multiclass"]))
    assert outcome.metrics["test/acc"] >= 0.95  # macro accuracy on 360 held-out digits after the default 10 epochs
    assert len(read_history(tmp_path).values("val/acc")) == 10
