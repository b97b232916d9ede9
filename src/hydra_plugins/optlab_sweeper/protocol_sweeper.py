"""``hydra/sweeper=protocol``: the optimizer comparison protocol (``optlab.protocol``) as a Hydra sweeper.

Its jobs go through whichever launcher is configured (the basic one, ``hydra/launcher=parallel``,
``hydra/launcher=slurm``), in two batches: the tuning grid with the torch-defaults runs, then the
tuned configurations on fresh seeds. Kept light: Hydra imports every plugin module at start.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class ProtocolSweeper(Sweeper):
    def __init__(self, **params: Any) -> None:
        self.params = params
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from optlab.errors import UserError
        from optlab.protocol.sweep import run_protocol

        assert self.config is not None and self.hydra_context is not None
        params = OmegaConf.to_container(OmegaConf.create(self.params), resolve=True)
        try:
            run_protocol(self.config, params, arguments, self._launch, self._compose)
        except UserError as error:
            log.error("%s", error)
            sys.exit(1)
        return None

    def _launch(self, batch: list[list[str]], first_number: int) -> Sequence[Any]:
        self.validate_batch_is_legal(batch)
        return self.launcher.launch(batch, initial_job_idx=first_number)

    def _compose(self, overrides: list[str]) -> DictConfig:
        """The config a job with these overrides gets, as the launcher composes it."""
        assert self.config is not None and self.hydra_context is not None
        return self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
