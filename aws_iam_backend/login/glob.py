"""Vault's wildcard rule for ``bound_iam_principal_arn`` (go-secure-stdlib ``GlobbedStringsMatch``).

Linear time; ``*`` is special only at the ends of a pattern.
"""

from __future__ import annotations


def glob_match(pattern: str, value: str) -> bool:
    """Match ``value`` against ``pattern``.

    Patterns shorter than two characters compare exactly (a lone ``*`` matches only
    ``*``); ``*x*`` is a substring test, ``x*`` a prefix test, ``*x`` a suffix test;
    anything else is an exact comparison.
    """
    if len(pattern) < 2:
        return pattern == value
    starts = pattern.startswith("*")
    ends = pattern.endswith("*")
    if starts and ends:
        return pattern[1:-1] in value
    if ends:
        return value.startswith(pattern[:-1])
    if starts:
        return value.endswith(pattern[1:])
    return pattern == value
