"""Using a trained model: per-class evaluation for ``--stage val/test`` and ``--stage predict`` on image files."""
