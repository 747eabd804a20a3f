"""Training: the LightningModule, the Trainer factories, and the optional Weights & Biases run."""
