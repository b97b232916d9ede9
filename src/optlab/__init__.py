"""optlab: the notebook's optimizer comparison as a Lightning + Hydra research template."""

import os

# Intel MKL, torch's matrix-multiply library on x86 CPUs, splits sums across threads in a
# way that changes the rounding with the thread count; chaotic runs (SGD, RMSprop at the
# notebook's learning rates) then end in visibly different places with 1 or 2 threads.
# Strict conditional-numerical-reproducibility mode makes results independent of the
# thread count, so a parallel sweep (fewer threads per job) reproduces a sequential one.
# It must be set before MKL's first call, hence here; an explicit user setting wins.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from optlab import resolvers  # noqa: E402,F401  (the configs use them: register before Hydra composes)
