"""The application layer: one function per user operation, every rule enforced there."""
