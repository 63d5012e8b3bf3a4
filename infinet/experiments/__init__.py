"""Reproducible commands behind the figures in the docs.

* ``python -m infinet.experiments.dynamics``: a finite ensemble trained by gradient
  descent against the exact infinite-width ensemble (:mod:`.dynamics`).
"""
