"""The exchange's tamper-evident log as a service: append, checkpoints, proofs, export, verify."""
