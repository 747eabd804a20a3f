"""The LR wing: the range test (Smith 2015/2017) from its settings and schedule up to ``find_lr`` and its result.

Users import from the face, :mod:`traenslenzor.tuner`; the modules here are its private parts. Nothing here imports
the batch wing (:mod:`traenslenzor.tuner.batch`), and nothing imports Lightning.
"""
