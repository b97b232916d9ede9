"""Every ``python train.py`` command of the README composes to a config that passes the run's checks.

``scripts/check_readme_commands.py`` runs each of them for real; this keeps the README from
drifting away from the configs in the quick suite.
"""

from __future__ import annotations

import itertools
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from optlab.building import build_trainer
from optlab.config_checks import check_config
from optlab.errors import UserError

from conftest import CONFIG_DIR, ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from check_readme_commands import PLACEHOLDER, needs_missing_hardware, readme_commands  # noqa: E402

TRAIN_COMMANDS = [command[1:] for command in readme_commands() if command[0] == "train.py"]


def jobs(arguments: list[str]) -> list[list[str]]:
    """The override lists a command stands for: one, or one per job of a ``-m`` sweep."""
    # Not a config value: a flag, or a checkpoint the reader has yet to make.
    overrides = [a for a in arguments if not a.startswith("-") and a != "job" and PLACEHOLDER not in a]
    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = [list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.input_line] for o in parsed]
    choices = [
        [f"{o.get_key_element()}={v}" for v in values] if o.is_sweep_override() else values for o, values in zip(parsed, choices)
    ]
    return [list(job) for job in itertools.product(*choices)]


def test_the_readme_shows_the_everyday_commands() -> None:
    lines = [" ".join(command) for command in TRAIN_COMMANDS]
    for expected in ("optimizer=rmsprop", "-m optimizer=adam,sgd,rmsprop", "-m hydra/launcher=slurm optimizer=adam,sgd"):
        assert expected in lines


@pytest.mark.parametrize("arguments", TRAIN_COMMANDS, ids=" ".join)
def test_a_readme_command_composes_and_passes_the_checks(arguments: list[str]) -> None:
    missing = needs_missing_hardware(arguments)
    for overrides in jobs(arguments):
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
        check_config(cfg)
        if missing in ("a CUDA GPU", "Apple MPS"):  # Lightning refuses the accelerator when the Trainer is built
            flags = {key: value for key, value in OmegaConf.to_container(cfg.trainer).items() if key != "default_root_dir"}
            with pytest.raises(
                UserError, match=r"^trainer.accelerator=.* is not valid: .* not available|^trainer \(accelerator="
            ):
                build_trainer(OmegaConf.create(flags), logger=False)
