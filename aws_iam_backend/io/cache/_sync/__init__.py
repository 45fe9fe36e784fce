# Generated from ../_async/__init__.py by scripts/unasync.py: edit that file, then run the script.
"""The Redis cache, one package per driver (see ``scripts/unasync.py``)."""
