"""The console is the first screen: ``python train.py`` read as a newcomer reads it."""

from __future__ import annotations

from pathlib import Path

from conftest import run_train
from notebook_reference import NOTEBOOK_ADAM_LOSSES


def console_lines(stdout: str) -> list[str]:
    """What stays on screen: each progress-bar redraw (after a carriage return) replaces the previous one."""
    return [line.split("\r")[-1].rstrip() for line in stdout.splitlines() if line.split("\r")[-1].strip()]


def test_a_run_shows_header_bar_epoch_table_and_closing_block_once(tmp_path: Path) -> None:
    result = run_train(["trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=50"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "logs" / "runs").iterdir()
    run = f"logs/runs/{run_dir.name}"
    lines = [line for line in console_lines(result.stdout) if "it/s" not in line]  # the bar aside

    # A short header: what runs and where its outputs go.
    assert [line.split()[0] for line in lines[:5]] == ["data", "model", "optimizer", "trainer", "outputs"]
    assert lines[0] == "data       blobs: 4000 training / 1000 held-out rows of 64 features, batch 16"
    assert lines[1] == "model      mlp: 64-256-1024-1, 280,833 parameters"
    assert lines[2] == "optimizer  adam: torch.optim.Adam(fused=True, lr=0.001)"
    assert lines[3].startswith("trainer    2 epochs on cpu x1")
    assert lines[4].startswith(f"outputs    {run}")
    assert not (tmp_path / "config_tree.txt").exists() and (run_dir / "config_tree.txt").is_file()
    assert "├──" not in result.stdout  # the config tree only when asked (print_config=true)

    # The progress bar with the live training loss.
    assert "Epoch 1/2:" in result.stdout and "train/loss_step=" in result.stdout

    # One row per epoch: the notebook's numbers (its printed sum over the 4000 rows), then validation.
    assert lines[5].split() == ["epoch", "train", "loss", "loss", "x", "rows", "val", "loss", "val", "acc"]
    first, second = lines[6].split(), lines[7].split()
    assert first[0] == "1/2" and second[0] == "2/2"
    assert float(first[1]) == round(NOTEBOOK_ADAM_LOSSES[0] / 4000, 4)
    for row, printed in zip((first, second), NOTEBOOK_ADAM_LOSSES):  # to 1e-3: the fused Adam kernel rounds differently
        assert abs(float(row[2]) - printed) <= 1e-3 * printed, (row, printed)
    assert 0.99 < float(second[4]) <= 1

    # A closing block: test metrics, the run directory, the exact TensorBoard command.
    assert lines[8].startswith("test      accuracy 0.99")
    assert lines[-2:] == [f"run       {run}", f"look      tensorboard --logdir {run}"]

    # Nothing twice, no advertisements, no warnings nobody can act on, no Lightning chatter.
    assert len(lines) == len(set(lines)), lines
    for noise in ("Tip", "litlogger", "LeafSpec", "INFO", "GPU available", "Seed set", "Trainer.fit", "Warning"):
        assert noise not in result.stdout + result.stderr, noise
    assert "GPU available: False" in (run_dir / "train.log").read_text()  # Lightning's messages are kept in the log


def test_help_starts_with_this_templates_usage(tmp_path: Path) -> None:
    result = run_train(["--help"], cwd=tmp_path)
    assert result.returncode == 0
    first = result.stdout.splitlines()[:4]
    assert first[0].startswith("optlab: ")
    assert "python train.py" in first[2] and "the notebook" in first[2]
    assert "logs/runs/<time>_<overrides>/" in result.stdout and "tensorboard --logdir logs/" in result.stdout
    assert "== Configuration groups ==" in result.stdout  # Hydra's own part follows
