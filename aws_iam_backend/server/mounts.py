"""The auth mount table: which :class:`Backend` serves ``/v1/auth/<path>``, kept in storage.

The table lives at ``sys/mounts``. Each mount's backend sees its own
``auth/<uuid>/`` view of the storage, so disabling a mount and enabling it again
starts afresh; every mount shares one token issuer (see :class:`MountTable`).
"""

from __future__ import annotations

import re
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ..backend import Backend, BackendSettings
from ..errors import InvalidRequestError
from ..fields import to_duration
from ..interfaces import JSONDict, Storage
from ..storage.prefixed import PrefixedStorage
from ..tokens import ACCESSOR_PREFIX, TOKEN_PREFIX, TokenIssuer

MOUNTS_KEY = "sys/mounts"
MOUNT_TYPE = "aws"
TOKEN_MOUNT = "token/"
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+", re.ASCII)

BackendFactory = Callable[..., Backend]


@attrs.frozen
class Mount:
    """One enabled AWS auth method. TTLs of 0 mean "the server's default"."""

    path: str
    uuid: str
    accessor: str
    description: str = ""
    default_lease_ttl: int = 0
    max_lease_ttl: int = 0

    def to_storage(self) -> JSONDict:
        """The mount's entry in ``sys/mounts``."""
        return {
            "type": MOUNT_TYPE,
            "uuid": self.uuid,
            "accessor": self.accessor,
            "description": self.description,
            "config": {
                "default_lease_ttl": self.default_lease_ttl,
                "max_lease_ttl": self.max_lease_ttl,
            },
        }

    def describe(self) -> dict[str, Any]:
        """The mount as ``GET /v1/sys/auth`` shows it."""
        return describe_entry(
            MOUNT_TYPE,
            self.description,
            self.accessor,
            self.uuid,
            self.default_lease_ttl,
            self.max_lease_ttl,
        )


def describe_entry(
    kind: str, description: str, accessor: str, mount_uuid: str, default_ttl: int, max_ttl: int
) -> dict[str, Any]:
    """One entry of Vault's ``sys/auth`` listing."""
    return {
        "type": kind,
        "description": description,
        "accessor": accessor,
        "uuid": mount_uuid,
        "config": {
            "default_lease_ttl": default_ttl,
            "max_lease_ttl": max_ttl,
            "force_no_cache": False,
            "token_type": "default-service",
        },
        "local": False,
        "seal_wrap": False,
        "external_entropy_access": False,
        "options": None,
    }


def mount_path(raw: str) -> str:
    """``raw`` normalised to ``a/b/`` form; 400 unless every segment is ``[A-Za-z0-9_.-]+``."""
    segments = raw.strip("/").split("/")
    if not all(_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        raise InvalidRequestError(f"invalid mount path: {raw!r}")
    return "/".join(segments) + "/"


def _from_storage(path: str, doc: Mapping[str, Any]) -> Mount:
    config = doc.get("config") or {}
    return Mount(
        path=path,
        uuid=str(doc["uuid"]),
        accessor=str(doc["accessor"]),
        description=str(doc.get("description", "")),
        default_lease_ttl=int(config.get("default_lease_ttl", 0)),
        max_lease_ttl=int(config.get("max_lease_ttl", 0)),
    )


def _ttl(config: Mapping[str, Any], name: str) -> int:
    value = config.get(name)
    if value is None or value == "":
        return 0
    try:
        return to_duration(value)
    except ValueError as exc:
        raise InvalidRequestError(f"error parsing {name}: {exc}") from None


class MountTable:
    """Enabled mounts and their backends. Thread-safe; changes are written through to storage.

    ``issuer`` is shared by every mount, so a token from any mount works with the
    token endpoints and records its mount in ``TokenRecord.mount``; ``token_storage``
    is the storage the issuer writes to (scanned to revoke a disabled mount's tokens).
    ``backend_options`` are further keywords for ``backend_factory`` (the audit sink).
    """

    def __init__(
        self,
        *,
        storage: Storage,
        issuer: TokenIssuer,
        token_storage: Storage,
        settings: BackendSettings,
        backend_factory: BackendFactory,
        backend_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._options = dict(backend_options or {})
        self._storage = storage
        self._issuer = issuer
        self._token_storage = token_storage
        self._settings = settings
        self._factory = backend_factory
        self._lock = threading.Lock()
        self._doc: JSONDict | None = None
        self._mounts: dict[str, Mount] = {}
        self._backends: dict[str, Backend] = {}
        self._refresh()

    def _refresh(self) -> None:
        """Adopt the stored mount table if another process changed it.

        Several server processes may share one storage: the table is re-read on every
        request (one small document) and backends are rebuilt only for changed mounts.
        """
        doc = self._storage.get(MOUNTS_KEY) or {}
        if doc == self._doc:
            return
        mounts = {p: _from_storage(p, d) for p, d in dict(doc.get("auth", {})).items()}
        backends = {
            p: self._backends[p]
            if p in self._mounts and self._mounts[p] == m and p in self._backends
            else self._backend(m)
            for p, m in mounts.items()
        }
        self._doc, self._mounts, self._backends = doc, mounts, backends

    def _backend(self, mount: Mount) -> Backend:
        settings = attrs.evolve(
            self._settings,
            mount=mount.path,
            default_ttl=mount.default_lease_ttl or self._settings.default_ttl,
            max_ttl=mount.max_lease_ttl or self._settings.max_ttl,
        )
        return self._factory(
            storage=PrefixedStorage(self._storage, f"auth/{mount.uuid}/"),
            issuer=self._issuer,
            settings=settings,
            **self._options,
        )

    def _save(self) -> None:
        doc = {"auth": {p: m.to_storage() for p, m in self._mounts.items()}}
        self._storage.put(MOUNTS_KEY, doc)
        self._doc = doc

    def backend(self, path: str) -> Backend | None:
        """The backend mounted exactly at ``path`` (``aws/``), or None."""
        with self._lock:
            self._refresh()
        return self._backends.get(path)

    def resolve(self, rest: str) -> tuple[Backend, str] | None:
        """For ``rest`` (what follows ``/v1/auth/``): the longest matching mount's backend
        and the path relative to it."""
        with self._lock:
            self._refresh()
        backends = self._backends
        for path in sorted(backends, key=len, reverse=True):
            if rest.startswith(path) or rest == path[:-1]:
                return backends[path], rest[len(path) :]
        return None

    def describe(self) -> dict[str, Any]:
        """Every mount as ``GET /v1/sys/auth`` shows it, the built-in ``token/`` included."""
        with self._lock:
            self._refresh()
        listing = {p: m.describe() for p, m in sorted(self._mounts.items())}
        listing[TOKEN_MOUNT] = describe_entry(
            "token", "token based credentials", "auth_token_root", "token", 0, 0
        )
        return listing

    def enable(self, path: str, data: Mapping[str, Any]) -> None:
        """Mount a new AWS auth method at ``path`` (``POST /v1/sys/auth/<path>``)."""
        kind = data.get("type")
        if not kind:
            raise InvalidRequestError("missing type")
        if kind != MOUNT_TYPE:
            raise InvalidRequestError(f"plugin not found in the catalog: {kind}")
        config = data.get("config") or {}
        if not isinstance(config, dict):
            raise InvalidRequestError("config must be an object")
        default_ttl, max_ttl = _ttl(config, "default_lease_ttl"), _ttl(config, "max_lease_ttl")
        if default_ttl and max_ttl and default_ttl > max_ttl:
            raise InvalidRequestError("default lease TTL cannot exceed max lease TTL")
        description = data.get("description") or ""
        if not isinstance(description, str):
            raise InvalidRequestError("description must be a string")
        path = mount_path(path)
        mount = Mount(
            path=path,
            uuid=str(uuid.uuid4()),
            accessor=f"auth_aws_{secrets.token_hex(4)}",
            description=description,
            default_lease_ttl=default_ttl,
            max_lease_ttl=max_ttl,
        )
        with self._lock:
            self._refresh()
            for taken in [*self._mounts, TOKEN_MOUNT]:
                if path.startswith(taken) or taken.startswith(path):
                    raise InvalidRequestError(f"path is already in use at {taken}")
            self._mounts[path] = mount
            self._save()
            self._backends = {**self._backends, path: self._backend(mount)}

    def ensure(self, path: str) -> None:
        """Mount ``path`` unless something is mounted there already (the dev server's ``aws/``)."""
        if self.backend(mount_path(path)) is None:
            self.enable(path, {"type": MOUNT_TYPE})

    def disable(self, path: str) -> None:
        """Unmount ``path``, delete its data and revoke its tokens; no error if not mounted."""
        path = mount_path(path)
        if path == TOKEN_MOUNT:
            raise InvalidRequestError("cannot disable the token auth method")
        with self._lock:
            self._refresh()
            mount = self._mounts.pop(path, None)
            if mount is None:
                return
            self._backends = {p: b for p, b in self._backends.items() if p != path}
            self._save()
        PrefixedStorage(self._storage, f"auth/{mount.uuid}/").clear()
        self._revoke_tokens(path)

    def _revoke_tokens(self, path: str) -> None:
        store = self._token_storage
        for name in store.list(TOKEN_PREFIX):
            doc = store.get(TOKEN_PREFIX + name)
            if doc is not None and doc.get("mount") == path:
                store.delete(TOKEN_PREFIX + name)
                if doc.get("accessor"):
                    store.delete(ACCESSOR_PREFIX + str(doc["accessor"]))
