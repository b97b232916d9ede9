"""Training steps per second on a CUDA GPU through the same path as ``train.py``.

    python benchmarks/bench_gpu.py           # about 2-4 minutes on one GPU

Runs the default job (``trainer=gpu``) for batch 16 (the notebook) and a large batch,
under each ``trainer.precision`` option, and prints a Markdown table. Exits without
measuring where no CUDA device is present.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BATCH_SIZES = (16, 4096)
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")


def steps_per_second(batch_size: int, precision: str, work: Path) -> tuple[float, float]:
    from hydra import compose, initialize_config_dir

    from optlab.train import train

    output_dir = work / f"b{batch_size}-{precision}"
    # More rows for the large batch, so an epoch still has a few dozen steps to time.
    n_samples = max(5000, batch_size * 50)
    overrides = [
        f"paths.output_dir={output_dir}", f"paths.log_dir={output_dir}", "trainer=gpu",
        f"trainer.precision={precision}", f"data.batch_size={batch_size}", f"data.n_samples={n_samples}",
        "trainer.max_epochs=5", "callbacks.progress_bar.refresh_rate=0", "trainer.enable_model_summary=false",
    ]
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    result = train(cfg)
    assert result.steps_per_second is not None
    return result.steps_per_second, result.steps_per_second * batch_size


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


if __name__ == "__main__":
    sys.exit(main())
