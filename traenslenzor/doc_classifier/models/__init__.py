"""The backbones: a registry of builders, all randomly initialised, and local pretrained weights."""
