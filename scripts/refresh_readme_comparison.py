"""Put a sweep's comparison plot into the README: docs/optimizer_comparison.png, or the name given.

Run through ``make readme-comparison``, which first runs the notebook's comparison
(``python train.py experiment=optimizer_comparison``) into a fresh sweep directory, and
``make readme-replicas`` (the same with ten seeds each, ``replicas=10``: replicas_comparison.png).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(sweep_dir: Path, name: str = "optimizer_comparison.png") -> None:
    shutil.copyfile(sweep_dir / "comparison.png", ROOT / "docs" / name)
    print(f"docs/{name} updated from {sweep_dir} (its table: {sweep_dir / 'summary.md'})")


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:])
