"""Put a sweep's report into the README: docs/optimizer_comparison.png and the summary table.

Run through ``make readme-comparison``, which first runs the notebook's comparison
(``python train.py experiment=optimizer_comparison``) into a fresh sweep directory.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- comparison:start -->", "<!-- comparison:end -->"


def main(sweep_dir: Path) -> None:
    shutil.copyfile(sweep_dir / "comparison.png", ROOT / "docs" / "optimizer_comparison.png")
    summary = (sweep_dir / "summary.md").read_text().split("\n", 2)[2].strip()  # drop the title
    summary = summary.replace("\n## ", "\n#### ").removeprefix("## ")  # nest under the README's section
    readme = (ROOT / "README.md").read_text()
    before, _, rest = readme.partition(START)
    _, _, after = rest.partition(END)
    figure = "![Training loss and validation accuracy per epoch for Adam, SGD and RMSprop](docs/optimizer_comparison.png)"
    (ROOT / "README.md").write_text(f"{before}{START}\n{figure}\n\n{summary}\n{END}{after}")
    print(f"README.md and docs/optimizer_comparison.png updated from {sweep_dir}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
