# Generated from ../_async/__init__.py by scripts/unasync.py: do not edit.
"""The storage wrappers and :mod:`.ops`, one package per driver (see ``scripts/unasync.py``)."""
