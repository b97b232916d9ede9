"""A sweep's report, built from what its jobs wrote: ``comparison.png``, ``summary.csv``, ``summary.md``, ``groups.csv``.

``jobs.py`` reads a sweep from disk, ``tables.py`` writes its tables, ``plot.py`` its picture::

    python -m optlab.report logs/multiruns/<date>_<time>
"""
