"""Evaluate a checkpoint on the held-out rows: ``python eval.py ckpt_path=<.../last.ckpt> [data=...]``."""

import hydra
from omegaconf import DictConfig

from optlab.cli import run_task


@hydra.main(version_base="1.3", config_path="configs", config_name="eval")
def main(cfg: DictConfig) -> float:
    from optlab.evaluate import evaluate

    return run_task(evaluate, cfg)


if __name__ == "__main__":
    main()
