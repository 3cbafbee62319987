"""Golden models (NumPy only)."""
