"""Run every ``python train.py`` / ``python eval.py`` command of the README, so the README stays true.

    python scripts/check_readme_commands.py            # each command, one epoch, in a scratch directory
    python scripts/check_readme_commands.py --list     # just the commands found

Each command runs as written plus ``trainer.max_epochs=1`` (a value override, so it changes
no group choice), from a scratch directory whose ``logs/`` holds what they write.
``<run>`` stands for the run directory of the main job (``python train.py``, run first), and ``my.csv`` is a small
numeric CSV with a 0/1 ``label`` column written there first. A command that needs hardware
this machine lacks (a GPU, Apple MPS, SLURM) must be refused in one line with exit status 1.
``tests/test_readme.py`` composes and checks each command's config without training.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = ("train.py", "eval.py")
PLACEHOLDER = "<run>"


def readme_commands(readme: Path = ROOT / "README.md") -> list[list[str]]:
    """Each ``python train.py ...`` / ``python eval.py ...`` line of the README's bash blocks, as argv."""
    commands, in_bash, pending = [], False, ""
    for line in readme.read_text().splitlines():
        if line.startswith("```"):
            in_bash = line.strip() == "```bash"
            continue
        if not in_bash:
            continue
        text = pending + re.sub(r"\s+#.*$", "", line).strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        words = shlex.split(text) if text else []
        if len(words) >= 2 and words[0] == "python" and words[1] in ENTRY_POINTS:
            commands.append(words[1:])
    return commands


def write_example_csv(path: Path, rows: int = 300) -> None:
    """What ``data=csv data.path=my.csv data.target=label`` expects: numeric columns and a 0/1 target."""
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=rows, centers=2, n_features=4, random_state=0)
    lines = ["f1,f2,f3,f4,label", *(",".join(f"{v:.5f}" for v in features) + f",{label}" for features, label in zip(x, y))]
    path.write_text("\n".join(lines) + "\n")


def needs_missing_hardware(args: list[str]) -> str | None:
    """What the command needs that this machine lacks, if anything."""
    import torch

    wants_gpu = any(a in ("trainer=gpu", "trainer.accelerator=gpu", "trainer.accelerator=cuda") for a in args)
    if wants_gpu and not torch.cuda.is_available():
        return "a CUDA GPU"
    if "trainer=mps" in args and not torch.backends.mps.is_available():
        return "Apple MPS"
    if "hydra/launcher=slurm" in args and shutil.which("sinfo") is None:
        return "SLURM"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="print the commands and stop")
    args = parser.parse_args()
    commands = readme_commands()
    if args.list:
        print("\n".join(shlex.join(["python", *command]) for command in commands))
        return
    work = Path(tempfile.mkdtemp(prefix="optlab-readme-"))
    write_example_csv(work / "my.csv")
    # The main job first (what `make train` runs): its run is the <run> the README's resume and eval commands name.
    commands.insert(0, ["train.py"])
    first_run: Path | None = None
    failures = 0
    for command in commands:
        missing = needs_missing_hardware(command)
        if PLACEHOLDER in " ".join(command):
            if first_run is None:
                print(f"skip    {shlex.join(command)}  (no earlier run to stand for {PLACEHOLDER})")
                continue
            command = [word.replace(f"logs/runs/{PLACEHOLDER}", str(first_run)) for word in command]
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, str(ROOT / command[0]), *command[1:], "trainer.max_epochs=1"],
            cwd=work,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        output = (result.stdout + result.stderr).strip()
        if missing:
            refused = result.returncode == 1 and "Traceback" not in output
            verdict = f"refused without {missing}" if refused else f"NOT REFUSED CLEANLY without {missing}"
        else:
            refused = result.returncode == 0
            verdict = "ok" if refused else f"FAILED (exit {result.returncode})"
        failures += not refused
        print(f"{verdict:<28} {seconds:5.1f} s  {shlex.join(command)}", flush=True)
        if not refused:
            print("    " + "\n    ".join(output.splitlines()[-8:]))
        if first_run is None and result.returncode == 0 and (runs := work / "logs" / "runs").is_dir():
            first_run = max(runs.iterdir(), key=lambda path: path.stat().st_mtime)
    print(f"\n{len(commands)} commands, {failures} failed; outputs in {work}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
