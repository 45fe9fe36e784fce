"""A griffe extension for the API reference (mkdocstrings): the docstrings are written with
Sphinx roles (``:class:`~aws_iam_backend.errors.ConflictError```, ``:meth:`commit```,
``:mod:`.asgi```); Markdown would show those literally. This turns each into inline code
that links to the object's entry when the reference renders it (an optional autorefs
cross-reference: plain code, not a broken link, when the object has no entry).

Names resolve as Sphinx resolves them: an absolute path as it is, a relative one
(``.asgi``, ``...vault.token_store``) against the docstring's package, a bare name through
the docstring's scope (its module's imports and members). ``~`` shows the last component;
``:meth:`` and ``:func:`` get ``()``.

A role naming something of this package that does not exist (a renamed class, a typo) is
a warning, which ``mkdocs build --strict`` turns into a failure: every docstring of the
package is checked, rendered or not. Builtins (``ValueError``) and other packages
(``ssl.SSLError``) are not checked.
"""

from __future__ import annotations

import builtins
import functools
import html
import logging
import re
from collections.abc import Iterator
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?P<role>class|meth|func|mod|data|attr|exc|obj|const)"
    r":`(?P<tilde>~)?(?P<target>[^`<>]+)`"
)
_CALLABLE_ROLES = frozenset({"meth", "func"})
# Under "mkdocs.", so that a warning counts for --strict.
_log = logging.getLogger("mkdocs.plugins.aws_iam_backend.sphinx_roles")


def _objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if isinstance(member, griffe.Object):  # aliases are checked where they are defined
            yield from _objects(member)


def _package(obj: griffe.Object) -> griffe.Object:
    """The package a relative name in ``obj``'s docstring is relative to."""
    module = obj if obj.is_module else obj.module
    if module.is_init_module or module.parent is None:
        return module
    return module.parent


def _identifier(obj: griffe.Object, target: str) -> str:
    """The full path ``target`` names, or ``target`` itself when it cannot be resolved."""
    if target.startswith("."):
        dots = len(target) - len(target.lstrip("."))
        base = _package(obj).path.split(".")
        base = base[: len(base) - (dots - 1)]
        return ".".join([*base, target[dots:]])
    if target.startswith(obj.package.name + "."):
        return target
    head, dot, rest = target.partition(".")
    try:
        return obj.resolve(head) + dot + rest
    except griffe.NameResolutionError:
        return target


def _exists(loader: griffe.GriffeLoader, identifier: str) -> bool:
    try:
        loader.modules_collection[identifier]
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return False
    return True


class SphinxRoles(griffe.Extension):
    """Rewrite the Sphinx roles of every docstring of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **_: Any) -> None:
        for obj in _objects(pkg):
            if obj.docstring is not None:
                replace = functools.partial(self._replace, obj, loader)
                obj.docstring.value = _ROLE.sub(replace, obj.docstring.value)

    def _replace(
        self, obj: griffe.Object, loader: griffe.GriffeLoader, match: re.Match[str]
    ) -> str:
        target = re.sub(r"\s+", "", match["target"])  # a role may wrap across lines
        identifier = _identifier(obj, target)
        ours = identifier.split(".")[0] == obj.package.name
        if (ours and not _exists(loader, identifier)) or (
            "." not in identifier and not hasattr(builtins, identifier)
        ):
            location = f"{obj.filepath}:{obj.lineno}" if obj.lineno else str(obj.filepath)
            _log.warning(f"{location}: {match[0]!r} names nothing in {obj.package.name}")
        shown = target.lstrip(".")
        if match["tilde"]:
            shown = shown.rsplit(".", 1)[-1]
        if match["role"] in _CALLABLE_ROLES:
            shown += "()"
        return (
            f'<autoref identifier="{html.escape(identifier, quote=True)}" optional>'
            f"<code>{html.escape(shown)}</code></autoref>"
        )
