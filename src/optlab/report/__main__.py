"""``python -m optlab.report <sweep dir>``: rebuild a sweep's report, for any launcher or a sweep stopped half-way."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from optlab.report.tables import build_report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild the report of a sweep directory.")
    parser.add_argument("sweep_dirs", nargs="+", type=Path, help="e.g. logs/multiruns/<date>_<time>")
    args = parser.parse_args(argv)
    for sweep_dir in args.sweep_dirs:
        if not sweep_dir.is_dir():
            print(f"error: sweep_dir {sweep_dir} is not a directory", file=sys.stderr)
            return 2
        try:
            jobs = build_report(sweep_dir)
        except FileNotFoundError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"{sweep_dir}: {len(jobs)} jobs -> comparison.png, summary.csv, summary.md, groups.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
