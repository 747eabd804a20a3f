"""The tuning workflow: batch size, then the LR (and its confirmation), the record that lets a run reuse them,
the batch plan, and the write-back of tuned values into the TOML."""
