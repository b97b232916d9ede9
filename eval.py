"""Test a checkpoint, its model built as its run built it: ``python eval.py ckpt_path=<run>/checkpoints/last.ckpt``."""

import hydra
from omegaconf import DictConfig

from optlab.config_checks import check_evaluation_config
from optlab.evaluate import evaluate
from optlab.runner import run_task


@hydra.main(version_base="1.3", config_path="configs", config_name="eval")
def main(cfg: DictConfig) -> float:
    return run_task(evaluate, cfg, checks=check_evaluation_config)


if __name__ == "__main__":
    main()
