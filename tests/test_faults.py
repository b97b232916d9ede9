"""Faults after the first week: every value a user can type, every file a user can point at.

Each ends before training with one line naming the key, the value and what would work
(for a checkpoint: what it was trained with), exit status 1, no traceback, and nothing
that was already on disk touched.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from experiment.tabular import CsvDataModule
from optlab.config_checks import check_config
from optlab.errors import ConfigError, InvalidArgument

from conftest import compose_config, run_train, train_here

# Its module-scoped fixture runs once: the file's tests share one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("faults")

TINY = ["data.n_samples=200", "trainer.max_epochs=1", "callbacks.progress_bar.refresh_rate=0"]


@pytest.fixture(scope="module")
def adam_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of ``train.py`` (its checkpoint and .hydra/ record what it was trained with)."""
    work = tmp_path_factory.mktemp("adam")
    result = run_train(["hydra.run.dir=run", *TINY, "model.hidden_sizes=[8,8]"], cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    return work / "run"


def snapshot(directory: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in directory.rglob("*") if path.is_file()}


def refusal(tmp_path: Path, overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as caught:
        train_here(compose_config(tmp_path / "run", overrides))
    message = str(caught.value)
    assert "\n" not in message
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before training
    return message


@pytest.mark.parametrize(
    "override, expected",
    [
        ("seed=abc", "seed='abc' is not valid: expected an integer from 0 to 4294967295"),
        ("seed=-1", "seed=-1 is not valid"),
        ("model.hidden_sizes=[0]", "model.hidden_sizes=[0] is not valid: expected a list of layer widths, each an integer >= 1"),
        ("model.hidden_sizes=[64,wide]", "model.hidden_sizes=[64, 'wide'] is not valid"),
        # Trainer flags are Lightning's to check: its own message, under the key.
        (
            "trainer.devices=0",
            "trainer.devices=0 is not valid: `Trainer(devices=0)` value is not a valid input using cpu accelerator",
        ),
        (
            "trainer.devices=[0,-1]",
            "trainer.devices=[0, -1] is not valid: `devices` selected with `CPUAccelerator` should be an int > 0",
        ),
        ("trainer.precision=17", "trainer.precision=17 is not valid: Precision 17 is invalid. Allowed precision values: ("),
        ("trainer.precision=fp32", "trainer.precision='fp32' is not valid: Precision 'fp32' is invalid"),
        ("trainer.max_epochs=-2", "trainer.max_epochs=-2 is not valid: `max_epochs` must be a non-negative integer or -1"),
        ("trainer.max_epochs=ten", "trainer.max_epochs='ten' is not valid: Trainer expects an integer or null"),
    ],
)
def test_values_out_of_range(tmp_path: Path, override: str, expected: str) -> None:
    assert refusal(tmp_path, [override]).startswith(expected)


def test_a_checkpoint_of_another_model_shape(tmp_path: Path, adam_run: Path) -> None:
    ckpt = adam_run / "checkpoints" / "last.ckpt"
    message = refusal(tmp_path, [f"ckpt_path={ckpt}"])
    # Read from the state dicts, so it holds for any model; the settings from the checkpoint's run directory.
    assert message == (
        f"ckpt_path='{ckpt}' is not valid: its net.0.weight has shape [8, 64], this run's model has "
        "[256, 64]: it was trained with model.hidden_sizes=[8, 8] data.n_samples=200"
    )


def test_a_checkpoint_of_another_optimizer_names_the_one_it_was_trained_with(tmp_path: Path, adam_run: Path) -> None:
    ckpt = adam_run / "checkpoints" / "last.ckpt"
    message = refusal(tmp_path, [f"ckpt_path={ckpt}", "model.hidden_sizes=[8,8]", "optimizer=rmsprop"])
    assert "it was trained with optimizer=adam (torch.optim.Adam), this run configures torch.optim.RMSprop" in message


def test_a_checkpoint_without_the_configured_scheduler(tmp_path: Path, adam_run: Path) -> None:
    ckpt = adam_run / "checkpoints" / "last.ckpt"
    message = refusal(tmp_path, [f"ckpt_path={ckpt}", "model.hidden_sizes=[8,8]", "scheduler=cosine"])
    assert "it holds no learning-rate scheduler, this run configures 1: pass scheduler=null" in message


def test_a_checkpoint_for_data_of_another_width(tmp_path: Path, adam_run: Path) -> None:
    ckpt = adam_run / "checkpoints" / "last.ckpt"
    message = refusal(tmp_path, [f"ckpt_path={ckpt}", "model.hidden_sizes=[8,8]", "data.n_features=10"])
    assert message.endswith(
        "its net.0.weight has shape [8, 64], this run's model has [8, 10]: "
        "it was trained with data.n_samples=200 data.n_features=64"
    )


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"hello, I am a text file\n", "not a torch checkpoint (neither a zip archive nor a pickle)"),
        (b"PK\x03\x04 but cut off", "not a readable torch checkpoint (RuntimeError: PytorchStreamReader failed"),
        (None, "a torch file, but not a Lightning checkpoint"),
    ],
    ids=["text", "truncated-zip", "plain-state-dict"],
)
def test_files_that_are_not_checkpoints(tmp_path: Path, content: bytes | None, expected: str) -> None:
    path = tmp_path / "model.ckpt"
    if content is None:
        torch.save({"weight": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"^ckpt_path=.* is not valid: ") as caught:
        check_config(compose_config(tmp_path / "run", [f"ckpt_path={path}"]))
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def write_rows(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as stream:
        csv.writer(stream).writerows(rows)
    return path


@pytest.mark.parametrize(
    "rows, name, expected",
    [
        ([], "path", "expected a header row and at least one data row"),
        ([["a", "label"]], "path", "expected a header row and at least one data row"),
        ([["a", "label"], ["1", "0"], ["2"]], "path", "line 3 has 1 fields, the header has 2"),
        ([["a", "label"], ["1", "0"], ["", "1"]], "path", "column 'a' is not numeric (line 3: '')"),
        ([["a", "label"], ["1", "0"], ["nan", "1"]], "path", "column 'a' has a missing or infinite value on line 3"),
        ([["a", "label"], ["1", "0"], ["2", "0"]], "target", "expected a binary column (two distinct values), found 1: 0"),
        ([["a", "label"], ["1", "0"], ["2", "1"], ["3", "1"]], "target", "each class needs at least two rows"),
    ],
    ids=["empty", "header-only", "ragged", "blank-cell", "nan", "one-class", "lonely-class"],
)
def test_a_csv_edited_by_hand(tmp_path: Path, rows: list[list[str]], name: str, expected: str) -> None:
    path = write_rows(tmp_path / "data.csv", rows)
    with pytest.raises(InvalidArgument) as caught:
        CsvDataModule(path=str(path), target="label")
    assert str(caught.value).startswith(f"{name}=") and expected in str(caught.value)


def test_a_csv_saved_by_a_spreadsheet_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("\ufeffa,label\n" + "".join(f"{i},{i % 2}\n" for i in range(20)), encoding="utf-8")
    assert CsvDataModule(path=str(path), target="label").n_features == 1


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["seed=abc"], "seed='abc' is not valid"),
        (["model.hidden_sizes=[0]"], "model.hidden_sizes=[0] is not valid"),
        (["ckpt_path=notes.txt"], "not a torch checkpoint"),
        (["ckpt_path={ckpt}"], "this run's model has [256, 64]: it was trained with model.hidden_sizes=[8, 8]"),
        (
            ["ckpt_path={ckpt}", "model.hidden_sizes=[8,8]", "optimizer=rmsprop"],
            "it was trained with optimizer=adam (torch.optim.Adam), this run configures optimizer=rmsprop (torch.optim.RMSprop)",
        ),
    ],
    ids=["seed", "width", "text-file", "shape", "optimizer"],
)
def test_the_command_line_says_it_in_one_line_and_exits_1(
    tmp_path: Path, adam_run: Path, overrides: list[str], expected: str
) -> None:
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    before = snapshot(adam_run)
    ckpt = adam_run / "checkpoints" / "last.ckpt"
    result = run_train([o.format(ckpt=ckpt) for o in overrides], cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-2000:]
    assert "Traceback" not in output and expected in output
    assert len([line for line in output.splitlines() if "is not valid" in line]) == 1
    assert snapshot(adam_run) == before  # the checkpoint's run is untouched
