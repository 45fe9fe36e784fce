"""The storage wrappers and :mod:`.ops`, one package per driver (see ``scripts/unasync.py``)."""
