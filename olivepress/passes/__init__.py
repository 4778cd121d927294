"""Passes: the uniform interface (base.py) and the one registry (registry.py)."""
