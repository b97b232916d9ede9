"""Before any job: whether a task's config runs at all, and whether its model trains its seeds as replicas.

A config every job would fail on (a data module without ``val_fraction``, a misspelt key) is
one line and exit 1 here, not a sweep of identical failures; a model that cannot be vectorised
(buffers such as BatchNorm's, manual optimization, an optimizer that is not element-wise) trains
its seeds one job each instead. Nothing is downloaded, set up or trained: the data module and
the model are only constructed.
"""

from __future__ import annotations

from omegaconf import DictConfig, open_dict

from optlab.building import build
from optlab.config_checks import check_config
from optlab.errors import UserError
from optlab.model_building import build_model


def construct(config: DictConfig, replicas: int) -> None:
    with open_dict(config):
        config.replicas = replicas
    build_model(config, build(config.data, "data"))


def replicas_refused(config: DictConfig, replicas: int) -> str | None:
    """Why the job ``config`` composes cannot train ``replicas`` seeds as one model, or None when it can.

    Raises the job's own error when it could not run with one seed either.
    """
    check_config(config)
    try:
        construct(config, replicas)
    except UserError as refusal:
        construct(config, 1)
        return str(refusal)
    return None
