"""Training steps per second on a CUDA GPU through the same path as ``train.py``.

    python benchmarks/bench_gpu.py           # about 2-4 minutes on one GPU

Runs the default job (``trainer=gpu``) for batch 16 (the notebook) and a large batch,
under each ``trainer.precision`` option, then ``replicas=K`` for K = 1, 4, 10, 32 against
the notebook's loop on the same GPU, and prints Markdown tables. Exits without measuring
where no CUDA device is present.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BATCH_SIZES = (16, 4096)
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")
REPLICA_COUNTS = (1, 4, 10, 32)


def steps_per_second(batch_size: int, precision: str, work: Path, replicas: int = 1, trainer: str = "gpu") -> tuple[float, float]:
    from hydra import compose, initialize_config_dir

    from optlab.train import train

    output_dir = work / f"b{batch_size}-{precision}-r{replicas}"
    # More rows for the large batch, so an epoch still has a few dozen steps to time.
    n_samples = max(5000, batch_size * 50)
    overrides = [
        f"paths.output_dir={output_dir}",
        f"paths.log_dir={output_dir}",
        f"trainer={trainer}",
        f"replicas={replicas}",
        f"trainer.precision={precision}",
        f"data.batch_size={batch_size}",
        f"data.n_samples={n_samples}",
        "trainer.max_epochs=5",
        "callbacks.progress_bar.refresh_rate=0",
        "trainer.enable_model_summary=false",
    ]
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    result = train(cfg)
    assert result.steps_per_second is not None
    return result.steps_per_second, result.steps_per_second * batch_size


def notebook_loop_steps_per_second(device: str, steps: int = 2000) -> float:
    """The notebook's Adam loop on ``device`` (one model, batch 16), after 100 unmeasured steps."""
    import time

    sys.path.insert(0, str(ROOT / "tests"))
    from notebook_reference import NOTEBOOK_OPTIMIZERS, NeuralNetwork, notebook_data

    X_train, _, Y_train, _ = (tensor.to(device) for tensor in notebook_data())
    model = NeuralNetwork().to(device)
    optimizer, loss_function = NOTEBOOK_OPTIMIZERS["adam"](model.parameters()), torch.nn.BCELoss()
    started = 0.0
    for step in range(steps + 100):
        if step == 100:
            torch.cuda.synchronize() if device == "cuda" else None
            started = time.perf_counter()
        i = 16 * (step % 250)
        optimizer.zero_grad()
        loss = loss_function(model(X_train[i : i + 16]), Y_train[i : i + 16])
        loss.backward()
        optimizer.step()
        loss.item()  # the notebook reads every loss
    return steps / (time.perf_counter() - started)


def replica_rows(work: Path, trainer: str = "gpu", device: str = "cuda") -> list[str]:
    """``replicas=K`` at batch 16: models trained per second, against K=1 and against the notebook's loop."""
    plain = notebook_loop_steps_per_second(device)
    rows = [
        "| replicas | steps/s | trained-model steps/s | per model vs replicas=1 | per model vs the notebook's loop |",
        "|---|---|---|---|---|",
        f"| notebook loop | {plain:.0f} | {plain:.0f} | | 1.00 |",
    ]
    single = 0.0
    for replicas in REPLICA_COUNTS:
        steps, _ = steps_per_second(16, "32-true", work, replicas=replicas, trainer=trainer)
        single = single or steps
        rows.append(
            f"| {replicas} | {steps:.0f} | {steps * replicas:.0f} | {single / (steps * replicas):.2f} | "
            f"{plain / (steps * replicas):.2f} |"
        )
    return rows


def main() -> None:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure (run this on a GPU machine)")
        return
    work = Path(tempfile.mkdtemp(prefix="optlab-gpu-bench-"))
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    print("\n| batch | precision | steps/s | samples/s |\n|---|---|---|---|")
    for batch_size in BATCH_SIZES:
        for precision in PRECISIONS:
            steps, samples = steps_per_second(batch_size, precision, work)
            print(f"| {batch_size} | {precision} | {steps:.0f} | {samples:.0f} |", flush=True)
    print("\nSeeds trained together (replicas=K, batch 16, 32-true); a ratio is time per trained model:\n")
    print("\n".join(replica_rows(work)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
