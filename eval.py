"""Evaluate a checkpoint on the held-out rows: ``python eval.py ckpt_path=<.../last.ckpt> [data=...]``."""

import hydra
from omegaconf import DictConfig

from optlab.cli import run_task
from optlab.validation import validate_evaluation


@hydra.main(version_base="1.3", config_path="configs", config_name="eval")
def main(cfg: DictConfig) -> float:
    return run_task("optlab.evaluate:evaluate", cfg, checks=validate_evaluation)


if __name__ == "__main__":
    main()
