# Generated from ../_async/__init__.py by scripts/unasync.py: edit that file, then run the script.
"""The storage wrappers and :mod:`.ops`, one package per driver (see ``scripts/unasync.py``)."""
