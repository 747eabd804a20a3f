"""The batch wing: the batch-size search, from its policies and the OOM test up to ``find_batch_size``.

Users import from the face, :mod:`traenslenzor.tuner`; the modules here are its private parts. Nothing here imports
the LR wing (:mod:`traenslenzor.tuner.lr`), and nothing imports Lightning.
"""
