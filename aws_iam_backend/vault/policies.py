"""Policy-name sanitising for role writes (Vault's ``policyutil``, then our checks).

Normalisation comes first (split on commas, trim, lower-case, drop empties,
de-duplicate, sort), and only then are names judged, so ``" Root"``, ``"rooT\\n"`` or
``"default,root"`` cannot slip past the ``root`` check (CVE-2025-5999 class).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from aws_iam_backend.errors import InvalidRequestError
from aws_iam_backend.vault.fields import go_trim_space
from aws_iam_backend.vault.gocompat import go_quote

MAX_POLICIES = 64

_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def sanitize_policies(items: Iterable[str]) -> tuple[str, ...]:
    """Normalise policy names, then refuse ``root``, control characters and long lists.

    Raises :class:`InvalidRequestError`. ``default`` is kept if given and never added.
    """
    names: set[str] = set()
    for item in items:
        for part in item.split(","):
            name = go_trim_space(part).lower()
            if name:
                names.add(name)
    result = tuple(sorted(names))
    if "root" in names:
        raise InvalidRequestError(
            'policy "root" cannot be assigned: auth methods cannot create root tokens'
        )
    for name in result:
        if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in name):
            raise InvalidRequestError(
                f"invalid policy name {go_quote(name)}: control or format characters "
                "are not allowed"
            )
    if len(result) > MAX_POLICIES:
        raise InvalidRequestError(
            f"too many policies: {len(result)} given, at most {MAX_POLICIES} allowed"
        )
    return result
