# Generated from ../_async/__init__.py by scripts/unasync.py: do not edit.
"""The Redis cache, one package per driver (see ``scripts/unasync.py``)."""
