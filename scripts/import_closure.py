"""The project's own modules one run goes through, and their lines: what a reader follows end to end.

    python scripts/import_closure.py [train.py overrides]

Runs ``train.py`` (by default one epoch of the notebook's run, into a temporary directory)
in this process, then lists every module of this repository that the run imported, and
the totals for the template's own packages.
"""

from __future__ import annotations

import runpy
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def project_modules() -> dict[str, int]:
    """Module name -> lines, for every imported module whose file lies in this repository (not its .venv)."""
    found = {}
    for name, module in sorted(sys.modules.items()):
        path = Path(getattr(module, "__file__", None) or "/").resolve()
        if path.is_file() and path.is_relative_to(ROOT) and not path.is_relative_to(ROOT / ".venv") and path.suffix == ".py":
            found[name] = len(path.read_text().splitlines())
    return found


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        overrides = sys.argv[1:] or ["trainer.max_epochs=1", "callbacks.progress_bar.refresh_rate=0"]
        sys.argv = [str(ROOT / "train.py"), f"hydra.run.dir={work}/run", *overrides]
        try:
            runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
        except SystemExit:
            pass
    modules = project_modules()
    for name, lines in modules.items():
        print(f"{lines:6d}  {name}")
    # What a reader follows: the template's two packages. Hydra imports the launcher plugins at every start.
    own = {name: lines for name, lines in modules.items() if name.split(".")[0] in ("optlab", "experiment")}
    plugins = {name: lines for name, lines in modules.items() if name.startswith("hydra_plugins")}
    print(f"{sum(own.values()):6d}  lines in {len(own)} modules of optlab and experiment")
    print(f"{sum(plugins.values()):6d}  lines in {len(plugins)} modules of hydra_plugins (Hydra's plugin scan)")


if __name__ == "__main__":
    main()
