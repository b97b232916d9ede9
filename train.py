"""Train one run, or a sweep with -m: ``python train.py [-m] [key=value ...]``."""

import hydra
from omegaconf import DictConfig

from optlab.cli import run_task


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float:
    # Imported here, not at the top: a sweep's launcher process never trains, so with a
    # parallel launcher it never pays the seconds Lightning takes to import.
    from optlab.train import train

    return run_task(train, cfg)


if __name__ == "__main__":
    main()
