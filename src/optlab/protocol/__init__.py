"""An optimizer comparison a reviewer accepts, as one sweep (``experiment=optimizer_protocol``).

The protocol of DeepOBS and of Schmidt, Schneider and Hennig (2021), with AlgoPerf's
time-to-target and performance profiles:

1. every optimizer gets the same tuning budget: the same log-spaced learning-rate grid, each
   point trained on the same few tuning seeds (as replicas, where the model allows);
2. the best point per optimizer, by the final validation metric with a diverged seed scored as
   the worst, is trained again on fresh seeds, none shared with tuning, and tested on rows
   validation never saw; beside it, each optimizer at torch's default settings on those seeds;
3. the report counts every seed that diverged, gives each optimizer's test metric with its 95 %
   interval, every pair's Welch test with Holm's correction, effect size and probability of
   being better, the learning-rate sensitivity, the curves of the confirmed runs, the steps and
   seconds each took to reach a validation target and, over several tasks, a performance profile.

``plan.py`` lays out the jobs, ``stages.py`` runs them through the configured launcher (reusing
the jobs a stopped run already finished), ``analysis.py`` reads what they wrote, ``figures.py``
and ``tables.py`` write the report. The Hydra sweeper is ``hydra_plugins/optlab_sweeper``.
"""
