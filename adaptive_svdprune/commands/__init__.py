"""Sub-commands of the ``adaptive-svdprune`` console script, one module each (see :mod:`adaptive_svdprune.cli`)."""
