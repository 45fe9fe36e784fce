# Generated from ../_async/__init__.py by scripts/unasync.py: edit that file, then run the script.
