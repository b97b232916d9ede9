"""Train one run, or a sweep with -m: ``python train.py [-m] [key=value ...]``."""

import hydra
from omegaconf import DictConfig

from optlab.cli import run_task
from optlab.validation import validate


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float:
    # The training code (and Lightning) is imported only after the config checks pass, and
    # never by a sweep's launcher process, which only starts jobs.
    return run_task("optlab.train:train", cfg, checks=validate)


if __name__ == "__main__":
    main()
