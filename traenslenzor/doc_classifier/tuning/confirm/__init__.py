"""Confirming the finder's LR by training: the candidates' trials, their Optuna study, and its plot."""
