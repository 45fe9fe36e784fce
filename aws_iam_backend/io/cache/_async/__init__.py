"""The Redis cache, one package per driver (see ``scripts/unasync.py``)."""
