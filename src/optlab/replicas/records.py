"""Each replica as a run of its own on disk: ``<run>/replica_NN/`` with its events, metrics, result and seed.

Replica k's metrics are logged as ``replica_NN/<name>`` (:mod:`optlab.replicas.routing` sends
them to its own directory); the sweep report counts each replica as a seed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# A run with replicas=K keeps each replica's record in <run>/replica_00/ ..., with replica.json naming its seed.
REPLICA_PREFIX = "replica_"
REPLICA_FILE = "replica.json"


def replica_key(k: int) -> str:
    """Replica k's directory below the run, and the prefix of its metric names there: ``replica_03``."""
    return f"{REPLICA_PREFIX}{k:02d}"


_REPLICA_METRIC = re.compile(rf"^{REPLICA_PREFIX}\d+/")


def is_replica_metric(name: str) -> bool:
    """``replica_03/val/loss``: a replica's metric as the run logs it (a model's own ``replica_x`` name is not one)."""
    return _REPLICA_METRIC.match(name) is not None


def split_replica_metrics(metrics: Mapping[str, Any], replicas: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run's own metrics (the replicas' mean), and each replica's under the model's names."""
    own = {name: value for name, value in metrics.items() if not is_replica_metric(name)}
    each: list[dict[str, Any]] = [{} for _ in range(replicas)]
    for name, value in metrics.items():
        if is_replica_metric(name):
            key, _, metric = name.partition("/")
            each[int(key.removeprefix(REPLICA_PREFIX))][metric] = value
    return own, each


def replica_seeds(seed: int, replicas: int) -> list[int]:
    """Replica k's seed is ``seed + k``: replica 0 is the single run with the same seed."""
    return [seed + k for k in range(replicas)]


def replica_dirs(output_dir: Path, replicas: int) -> list[Path]:
    """Each replica's own run directory; a run of one replica is its own record and has none."""
    return [output_dir / replica_key(k) for k in range(replicas)] if replicas > 1 else []


def write_replica_records(output_dir: Path, seeds: Sequence[int]) -> None:
    """``replica.json`` in each replica's directory, before training: the report knows a replica that never finished."""
    for k, (directory, seed) in enumerate(zip(replica_dirs(output_dir, len(seeds)), seeds, strict=True)):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / REPLICA_FILE).write_text(json.dumps({"replica": k, "seed": seed}) + "\n")


def replica_summary(metric: str, each: Sequence[Mapping[str, float]], where: str = "") -> str | None:
    """``10 seeds, val/loss 0.0123 ± 0.0045 sd, 95 % CI [0.0091, 0.0155]`` for the console (within 80 columns)."""
    if len(each) < 2:
        return None
    from optlab.uncertainty import summarise  # scipy, for the runs that have replicas to summarise

    logged = [replica[metric] for replica in each if metric in replica]
    summary = summarise([value for value in logged if math.isfinite(value)])
    if summary is None or summary.std is None:
        return None
    diverged = f" ({len(logged) - summary.n} more not finite)" if len(logged) > summary.n else ""
    return (
        f"{summary.n} seeds{diverged}, {metric} {summary.mean:.4g} ± {summary.std:.2g} sd, "
        f"95 % CI [{summary.low:.4g}, {summary.high:.4g}]" + (f"; {where}" if where else "")
    )
