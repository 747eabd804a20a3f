"""traenslenzor: tune and train document-image classifiers.

``traenslenzor.tuner`` is the LR range test and batch-size finder (plain PyTorch and Lightning);
``traenslenzor.doc_classifier`` is the RVL-CDIP training app that uses it.
"""

__version__ = "0.1.0"
