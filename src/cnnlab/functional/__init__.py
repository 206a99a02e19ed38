"""Operators on NumPy arrays, each with its backward (vector-Jacobian product) beside it."""
