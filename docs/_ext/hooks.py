"""MkDocs hooks of the documentation site (``hooks:`` in ``mkdocs.yml``).

Headings get GitHub's anchors, so one link (``configuration.md#configcertificatecert_name``)
works both on GitHub and on the site: lower-cased, every character that is not a letter,
digit, ``_``, ``-`` or space dropped (``<cert_name>`` keeps its text, unlike
Python-Markdown's slugify, which drops it as a tag), spaces turned into ``-``, runs kept
(``--config`` gives ``---config``).
"""

from __future__ import annotations

import re
from typing import Any

_DROP = re.compile(r"[^\w\- ]")


def github_slug(text: str, separator: str) -> str:
    """The anchor GitHub gives a heading whose text is ``text``."""
    return _DROP.sub("", text.strip().lower()).replace(" ", separator)


def on_config(config: Any, **_: Any) -> Any:
    config["mdx_configs"].setdefault("toc", {})["slugify"] = github_slug
    return config
