"""The ``ec2`` login type's endpoints: ``config/certificate/<name>``, the identity access
list, the role tag deny list, their tidy configurations and tidies, and ``role/<name>/tag``.

:class:`AsyncEc2Admin` is part of
:class:`~aws_iam_backend.drivers._async.backend.AsyncBackend` (its ``ec2_admin``); every
write is conditional on what it read (retried on a conflict), so concurrent writers lose
nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_iam_backend.drivers.shapes import Response, list_response
from aws_iam_backend.ec2 import accesslist as al
from aws_iam_backend.ec2 import roletag as rt
from aws_iam_backend.ec2.certificates import (
    AwsCertificate,
    default_certificates,
    parse_certificate_config,
)
from aws_iam_backend.errors import (
    ConflictError,
    InternalError,
    InvalidRequestError,
    UnsupportedOperationError,
)
from aws_iam_backend.io.protocols import AsyncStorage, Delete, Document, Put
from aws_iam_backend.io.storage._async import ops
from aws_iam_backend.vault import roles as role_mod
from aws_iam_backend.vault.fields import FieldType, parse_fields, unrecognized_warning
from aws_iam_backend.vault.gocompat import go_quote

if TYPE_CHECKING:
    from aws_iam_backend.drivers._async.backend import AsyncBackend

CERTIFICATE_PREFIX = "config/certificate/"
_CERT_NAME = re.compile(r"\w(([\w\-.]+)?\w)?", re.ASCII)
_CERTIFICATE_FIELDS = {"aws_public_cert": FieldType.STRING, "type": FieldType.STRING}
_DENYLIST_FIELDS = {"role_tag": FieldType.STRING}


@functools.lru_cache(maxsize=64)
def _configured_certificate(name: str, pem: str, type_: str) -> AwsCertificate:
    """A stored ``config/certificate/<name>``, parsed once per distinct content."""
    return parse_certificate_config(name, pem, type_)


async def load_certificates(storage: AsyncStorage) -> list[AwsCertificate]:
    """The built-in certificates, then every ``config/certificate/<name>`` in ``storage``."""
    found = list(default_certificates())
    for name in await storage.list(CERTIFICATE_PREFIX):
        doc = await ops.get(storage, CERTIFICATE_PREFIX + name)
        if doc is not None:
            found.append(_certificate_from_storage(name, doc))
    return found


class AsyncEc2Admin:
    """The ``ec2`` endpoints of one backend."""

    def __init__(self, backend: AsyncBackend) -> None:
        self._backend = backend

    async def handle(
        self, name: str, argument: str, operation: str, data: Mapping[str, Any]
    ) -> Response:
        """Serve one of the EC2 endpoints (``name``/``argument`` from the router)."""
        write = operation in ("create", "update")
        if name == "config/certificates" and operation == "list":
            return list_response(await self._backend.storage.list(CERTIFICATE_PREFIX))
        if name == "config/certificate/":
            if write:
                return await self._write_certificate(argument, data)
            if operation == "read":
                return await self._read_certificate(argument)
            if operation == "delete":
                await self._backend.storage.commit([Delete(CERTIFICATE_PREFIX + argument)])
                return Response()
        if name == "identity-accesslist" and operation == "list":
            return list_response(await self._backend.storage.list(al.ACCESSLIST_STORAGE_PREFIX))
        if name == "identity-accesslist/":
            if operation == "read":
                return await self._read_access_list(argument)
            if operation == "delete":
                key = al.ACCESSLIST_STORAGE_PREFIX + argument
                await self._backend.storage.commit([Delete(key)])
                return Response()
        if name == "roletag-denylist" and operation == "list":
            names = await self._backend.storage.list(rt.DENYLIST_STORAGE_PREFIX)
            return list_response(rt.denylist_tags(names))
        if name == "roletag-denylist/":
            if write:
                return await self._denylist(argument, data)
            if operation == "read":
                return await self._read_denylist(argument)
            if operation == "delete":
                await self._backend.storage.commit([Delete(rt.denylist_storage_key(argument))])
                return Response()
        if name in _TIDY_CONFIGS:
            key, default = _TIDY_CONFIGS[name]
            if write:
                return await self._write_tidy_config(key, default, data)
            if operation == "read":
                doc = await ops.get(self._backend.storage, key)
                if doc is None:
                    return Response()
                return Response(data=al.tidy_config_read_data(al.tidy_config_from_storage(doc)))
            if operation == "delete":
                await self._backend.storage.commit([Delete(key)])
                return Response()
        if name in _TIDIES and write:
            buffer = al.tidy_safety_buffer(data)
            prefix = _TIDIES[name]
            await self._tidy(prefix, buffer)
            return Response(warnings=tuple(unrecognized_warning(data, al.TIDY_FIELDS)))
        if name == "role/tag" and write:
            return await self._create_role_tag(argument, data)
        raise UnsupportedOperationError()

    async def _write_certificate(self, name: str, data: Mapping[str, Any]) -> Response:
        if _CERT_NAME.fullmatch(name) is None:
            raise InvalidRequestError(
                "missing certificate name"
                if not name
                else f"invalid certificate name {go_quote(name)}"
            )
        fields = parse_fields(data, _CERTIFICATE_FIELDS)
        key = CERTIFICATE_PREFIX + name
        cert_type = fields.string("type")
        pem = fields.string("aws_public_cert")

        def change(stored: Document | None) -> list[Put]:
            existing = str(stored.value.get("type") or "pkcs7") if stored else "pkcs7"
            chosen = existing if cert_type is None else cert_type  # Vault: "" is given, invalid
            if pem is None:
                if chosen.lower() not in ("pkcs7", "identity"):
                    parse_certificate_config(name, "", chosen)  # Vault checks the type first
                raise InvalidRequestError("missing aws_public_cert")
            certificate = parse_certificate_config(name, pem, chosen)
            return [Put(key, {"aws_public_cert": certificate.pem, "type": certificate.type})]

        await ops.update(self._backend.storage, key, change)  # concurrent writers: retried
        known = {*_CERTIFICATE_FIELDS, "cert_name"}  # the path's field, as hvac also sends it
        return Response(warnings=tuple(unrecognized_warning(data, known)))

    async def _read_certificate(self, name: str) -> Response:
        doc = await ops.get(self._backend.storage, CERTIFICATE_PREFIX + name)
        if doc is None:
            return Response()
        certificate = _certificate_from_storage(name, doc)
        return Response(data={"aws_public_cert": certificate.pem, "type": certificate.type})

    async def _read_access_list(self, instance_id: str) -> Response:
        doc = await self._backend.storage.read(al.ACCESSLIST_STORAGE_PREFIX + instance_id)
        if doc is None:
            return Response()
        return Response(data=al.entry_read_data(_entry(doc)))

    async def _denylist(self, argument: str, data: Mapping[str, Any]) -> Response:
        backend = self._backend
        given = argument or (parse_fields(data, _DENYLIST_FIELDS).string("role_tag") or "")
        value = rt.denylist_role_tag(given)
        tag = rt.parse_role_tag(value)
        tag_role = await backend.load_role(tag.role.lower())
        if tag_role is None:
            raise rt.tag_role_not_found(tag.role)
        rt.verify_role_tag(tag, tag_role.hmac_key)
        key = rt.denylist_storage_key(value)

        def change(stored: Document | None) -> list[Put]:
            entry = rt.denylist_entry(
                None if stored is None else rt.denylist_from_storage(stored.value),
                now=backend.clock.now(),
                tag_max_ttl=tag.max_ttl,
                role_max_ttl=tag_role.token.token_max_ttl,
                system_max_ttl=backend.settings.max_ttl,
            )
            expires_at = entry.expiration_time.timestamp()
            return [Put(key, rt.denylist_to_storage(entry), expires_at=expires_at)]

        await ops.update(backend.storage, key, change)  # concurrent writers: retried
        return Response(warnings=tuple(unrecognized_warning(data, _DENYLIST_FIELDS)))

    async def _read_denylist(self, tag: str) -> Response:
        doc = await self._backend.storage.read(rt.denylist_storage_key(tag))
        if doc is None:
            return Response()
        return Response(data=rt.denylist_read_data(rt.denylist_from_storage(doc.value)))

    async def _write_tidy_config(self, key: str, default: int, data: Mapping[str, Any]) -> Response:
        def change(stored: Document | None) -> list[Put]:
            config = al.write_tidy_config(
                None if stored is None else al.tidy_config_from_storage(stored.value),
                data,
                default_safety_buffer=default,
            )
            return [Put(key, al.tidy_config_to_storage(config))]

        await ops.update(self._backend.storage, key, change)  # concurrent writers: retried
        return Response(warnings=tuple(unrecognized_warning(data, al.TIDY_CONFIG_FIELDS)))

    async def _create_role_tag(self, name: str, data: Mapping[str, Any]) -> Response:
        backend = self._backend
        key = role_mod.normalize_role_name(name)
        role = await backend.load_role(key)
        if role is None:
            raise InvalidRequestError(f"entry not found for role {name}")
        tag, warnings = rt.create_role_tag(
            role, data, nonce=rt.new_role_tag_nonce(), system_max_ttl=backend.settings.max_ttl
        )
        warnings += unrecognized_warning(data, rt.ROLE_TAG_FIELDS)
        return Response(data=dict(tag), warnings=tuple(warnings))

    # ------------------------------------------------------------------ tidy

    async def _tidy(self, prefix: str, safety_buffer: int) -> int:
        """Delete entries under ``prefix`` expired more than ``safety_buffer`` seconds ago
        (each delete conditional on the version found, so a fresh login is kept)."""
        storage = self._backend.storage
        cutoff = self._backend.clock.now().timestamp() - safety_buffer
        removed = 0
        while True:
            due = await storage.expired(prefix, cutoff, 500)
            for doc in due:
                try:
                    await storage.commit([Delete(doc.key, expect=doc.version)])
                except ConflictError:
                    continue
                removed += 1
            if len(due) < 500:
                return removed

    async def tidy(self) -> int:
        """The periodic tidy of the identity access list and the role tag deny list, each
        with its configured safety buffer unless its periodic tidy is disabled."""
        removed = 0
        for name, (key, default) in _TIDY_CONFIGS.items():
            doc = await ops.get(self._backend.storage, key)
            config = None if doc is None else al.tidy_config_from_storage(doc)
            buffer = al.periodic_safety_buffer(config, default=default)
            if buffer is not None:
                removed += await self._tidy(_TIDIES["tidy/" + name[len("config/tidy/") :]], buffer)
        return removed


def _entry(doc: Document) -> al.AccessListEntry:
    return al.entry_from_storage(doc.value)


def _certificate_from_storage(name: str, doc: Mapping[str, object]) -> AwsCertificate:
    """A stored certificate; a document that is not one is a 500 (Vault's "certificate
    storage has a nil entry"), never a 404 that would hide the store's fault."""
    pem, cert_type = doc.get("aws_public_cert"), doc.get("type") or "pkcs7"
    if not isinstance(pem, str) or not isinstance(cert_type, str):
        raise InternalError(
            f"certificate storage has a malformed entry under the name: {go_quote(name)}"
        )
    return _configured_certificate(name, pem, cert_type)


_TIDY_CONFIGS = {
    "config/tidy/identity-accesslist": (
        al.IDENTITY_ACCESSLIST_TIDY_CONFIG_KEY,
        al.TIDY_SAFETY_BUFFER_DEFAULT,
    ),
    "config/tidy/roletag-denylist": (
        al.ROLETAG_DENYLIST_TIDY_CONFIG_KEY,
        al.ROLETAG_DENYLIST_TIDY_SAFETY_BUFFER_DEFAULT,
    ),
}
_TIDIES = {
    "tidy/identity-accesslist": al.ACCESSLIST_STORAGE_PREFIX,
    "tidy/roletag-denylist": rt.DENYLIST_STORAGE_PREFIX,
}


__all__ = ["AsyncEc2Admin", "load_certificates"]
