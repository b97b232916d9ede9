"""``replicas=K``: K seeds of one model trained together in one Lightning run, each recorded as a run of its own.

``module.py`` is the LightningModule that trains them (stacked weights, a vectorised
``model_step``), ``checks.py`` what it refuses, ``records.py`` each replica's own run
directory and the routing of its metrics there. ``docs/replicas.md`` has the details.
"""
