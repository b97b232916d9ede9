"""Train one run, or a sweep with -m: ``python train.py [-m] [key=value ...]``."""

import hydra
from omegaconf import DictConfig

from optlab.config_checks import check_config
from optlab.runner import run_task
from optlab.train import train


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float:
    return run_task(train, cfg, checks=check_config)


if __name__ == "__main__":
    main()
