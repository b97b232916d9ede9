"""What TensorBoard opens on for a sweep: its ranking metric first, and the settings that tell the jobs apart.

TensorBoard's HParams table ticks the first five metrics and the first five hyper-parameters
it is given, those marked ``differs`` first. Built from the runs alone it sorts metrics by
name (``epoch``, ``test/acc``, ..., with ``val/loss`` unticked) and fills the five with
constants when fewer settings vary. A sweep therefore writes one HParams *experiment* into its
own directory when it ends: the metrics as the report orders them (``optimized_metric``,
validation, test, training), and the settings that tell the jobs apart, the first five of them
(the optimizer, its learning rate, the seed, then what else varies) ticked. Constants are left
out: they are in each job's ``hparams.yaml`` and ``.hydra/config.yaml``.

With it goes a Custom Scalars layout (TensorBoard's "Custom scalars" tab): the ranking metric,
then validation, test and training, one chart per metric with every job's curve in it.

Both are derived files (``*.optlab`` event files): rewriting the report replaces them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalar_metadata
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from optlab.report.jobs import Job, default_metrics, stage_of

SUFFIX = ".optlab"  # the sweep's own event files, told apart from the jobs' by name
# Settings that tell runs apart in any comparison of optimizers, first among the varying ones.
FIRST_COLUMNS = ("optimizer", "optimizer/lr", "seed", "replica")
SHOWN = 5  # the hyper-parameters TensorBoard's table ticks
UNGROUPED = ("seed", "optimizer", "replica")  # the run's settings that have no "<group>/" prefix


def job_hparams(job: Job) -> dict[str, Any]:
    """The settings a job's HParams session holds, read from its ``hparams.yaml`` (nothing without one).

    Lightning adds the model's and data module's own ``save_hyperparameters`` to that file, unprefixed
    (``batch_size``, ``hidden_sizes``); the session has only the run's settings (``data/batch_size``).
    """
    path = job.path / "hparams.yaml"
    if not path.is_file():
        return {}
    loaded = yaml.safe_load(path.read_text())
    if not isinstance(loaded, dict):
        return {}
    return {name: value for name, value in loaded.items() if "/" in str(name) or name in UNGROUPED}


def hparam_type(values: Sequence[Any]) -> int:
    if all(isinstance(value, bool) for value in values):
        return api_pb2.DATA_TYPE_BOOL
    if all(isinstance(value, int | float) and not isinstance(value, bool) for value in values):
        return api_pb2.DATA_TYPE_FLOAT64
    return api_pb2.DATA_TYPE_STRING


def hparam_infos(sessions: Sequence[Mapping[str, Any]]) -> list[api_pb2.HParamInfo]:
    """The settings that vary between sessions; the first ``SHOWN`` of them (``FIRST_COLUMNS`` leading) marked ``differs``.

    TensorBoard lists the ``differs`` ones first, by name, and ticks the first five: marking
    only the chosen few is what keeps the seed among them when an optimizer's own arguments
    (momentum, alpha, ...) vary too. The others are one tick away in the table's settings.
    With nothing varying (a one-job sweep), the ``FIRST_COLUMNS`` it has.
    """
    values: dict[str, list[Any]] = {}
    for session in sessions:
        for name, value in session.items():
            values.setdefault(name, []).append(value)
    varying = [  # a setting only some sessions have (SGD's momentum) varies too
        name for name, seen in values.items() if len({repr(value) for value in seen}) > 1 or len(seen) < len(sessions)
    ]
    ranked = sorted(varying, key=lambda name: (FIRST_COLUMNS.index(name) if name in FIRST_COLUMNS else len(FIRST_COLUMNS), name))
    shown = set(ranked[:SHOWN])
    listed = varying or [name for name in FIRST_COLUMNS if name in values]
    infos = []
    for name in sorted(listed):
        kind = hparam_type(values[name])
        info = api_pb2.HParamInfo(name=name, type=kind, differs=name in shown)
        if kind == api_pb2.DATA_TYPE_STRING:
            info.domain_discrete.extend(sorted({str(value) for value in values[name]}))
        infos.append(info)
    return infos


def experiment_summary(sessions: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> summary_pb2.Summary:
    experiment = api_pb2.Experiment(
        hparam_infos=hparam_infos(sessions),
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metrics],
        time_created_secs=time.time(),
    )
    content = plugin_data_pb2.HParamsPluginData(experiment=experiment, version=hparams_metadata.PLUGIN_DATA_VERSION)
    return summary_pb2.Summary(
        value=[
            summary_pb2.Summary.Value(
                tag=hparams_metadata.EXPERIMENT_TAG, metadata=hparams_metadata.create_summary_metadata(content)
            )
        ]
    )


def scalars_layout(metric: str, jobs: Sequence[Job], metrics: Sequence[str]) -> summary_pb2.Summary:
    """Custom Scalars: the ranking metric, then each stage's metrics, a chart per metric over every job."""

    def chart(tag: str) -> layout_pb2.Chart:
        return layout_pb2.Chart(title=tag, multiline=layout_pb2.MultilineChartContent(tag=[f"^{re.escape(tag)}$"]))

    categories = [layout_pb2.Category(title=f"{metric}: the sweep's ranking", chart=[chart(metric)])]
    for stage, title in (("validate", "validation"), ("test", "test"), ("train", "training")):
        tags = [tag for tag in metrics if tag != metric and stage_of(jobs, tag) == stage]
        if tags:
            categories.append(layout_pb2.Category(title=title, chart=[chart(tag) for tag in tags], closed=stage == "train"))
    layout = layout_pb2.Layout(category=categories).SerializeToString()  # a string tensor, as the plugin reads it
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, string_val=[layout], tensor_shape=tensor_shape_pb2.TensorShapeProto()
    )
    return summary_pb2.Summary(
        value=[
            summary_pb2.Summary.Value(
                tag=custom_scalar_metadata.CONFIG_SUMMARY_TAG,
                metadata=custom_scalar_metadata.create_summary_metadata(),
                tensor=tensor,
            )
        ]
    )


def write_sweep_layout(sweep_dir: Path, jobs: Sequence[Job], metric: str) -> None:
    """The sweep's HParams experiment and Custom Scalars layout, replacing the ones an earlier report wrote."""
    sessions = [hparams for job in jobs if (hparams := job_hparams(job))]
    if not sessions:  # no TensorBoard logger: nothing for TensorBoard to open
        return
    for old in sweep_dir.glob(f"events.out.tfevents.*{SUFFIX}"):
        old.unlink()
    metrics = default_metrics(jobs, metric)
    writer = EventFileWriter(str(sweep_dir), filename_suffix=SUFFIX)
    for summary in (experiment_summary(sessions, metrics), scalars_layout(metric, jobs, metrics)):
        writer.add_event(event_pb2.Event(wall_time=time.time(), summary=summary))
    writer.close()
