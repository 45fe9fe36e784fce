"""The EC2 side of the AWS auth method's logins: instance checks for IAM logins that infer
an EC2 instance, and the ``ec2`` login type (its endpoints are in
:mod:`~aws_iam_backend.drivers._async.ec2_admin`).

:class:`AsyncEc2Auth` is part of :class:`~aws_iam_backend.drivers._async.backend.AsyncBackend`
(its ``ec2_auth``) and uses the backend's storage, clock, settings, roles and AWS access.
Every EC2 and IAM call runs on a worker thread, holding one of the backend's outbound
slots (the same cap as STS calls), and only after every local check has passed.
"""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from aws_iam_backend.drivers._async.ec2_admin import load_certificates
from aws_iam_backend.drivers.shapes import Response, auth_data
from aws_iam_backend.ec2 import accesslist as al
from aws_iam_backend.ec2 import roletag as rt
from aws_iam_backend.ec2.document import INSTANCE_ID, IdentityDocument, parse_identity_document
from aws_iam_backend.ec2.instance import (
    EC2_LOGIN_PREFIX,
    IAM_INFERENCE_PREFIX,
    Ec2Instance,
    check_instance_binds,
    check_region_bind,
)
from aws_iam_backend.ec2.login import VerifiedEc2Login
from aws_iam_backend.ec2.pkcs7 import verify_identity_signature, verify_pkcs7
from aws_iam_backend.errors import (
    BackendError,
    ConflictError,
    InvalidRequestError,
    PermissionDeniedError,
    RateLimitedError,
    UpstreamError,
)
from aws_iam_backend.io.concurrency import async_in_thread
from aws_iam_backend.io.protocols import ABSENT, AwsAccess, Delete, Document, Ec2Lookups, Put
from aws_iam_backend.io.storage._async import ops
from aws_iam_backend.login.arn import ArnError, IamEntity, parse_iam_arn
from aws_iam_backend.login.bind import check_cidrs
from aws_iam_backend.login.decode import KNOWN_LOGIN_FIELDS, Ec2LoginPayload
from aws_iam_backend.login.issue import VerifiedLogin, token_spec
from aws_iam_backend.vault import config as cfg
from aws_iam_backend.vault import roles as role_mod
from aws_iam_backend.vault.fields import unrecognized_warning
from aws_iam_backend.vault.gocompat import go_quote, parse_duration_seconds
from aws_iam_backend.vault.roles import Role
from aws_iam_backend.vault.tokens import TokenRecord
from aws_iam_backend.vault.tokenutil import TokenSettings, compute_lease

if TYPE_CHECKING:
    from aws_iam_backend.drivers._async.backend import AsyncBackend

_WRITE_ATTEMPTS = ops.DEFAULT_ATTEMPTS
"""Conditional writes of one access list entry a login or renewal tries before giving up
(each conflict means another request of the instance got in first)."""


@attrs.frozen
class _CheckedEc2Login:
    """An ``ec2`` login that passed every check but the access list's (which depends on
    the entry as read at write time): ``grant`` is the role tag's, if the role has one;
    ``nonce`` the request's (None: absent)."""

    role: Role
    role_name: str
    document: IdentityDocument
    instance: Ec2Instance
    nonce: str | None = attrs.field(repr=False)
    grant: rt.RoleTagGrant | None = None

    @property
    def key(self) -> str:
        """The instance's access list storage key."""
        return al.ACCESSLIST_STORAGE_PREFIX + self.document.instance_id


class AsyncEc2Auth:
    """EC2 instance checks and the ``ec2`` login type of one backend."""

    def __init__(self, backend: AsyncBackend, lookups: Ec2Lookups) -> None:
        self._backend = backend
        self.lookups = lookups

    # ------------------------------------------------------- instance checks

    async def _describe(
        self, instance_id: str, region: str, account_id: str, access: AwsAccess
    ) -> Ec2Instance:
        async with self._backend.outbound_slot():
            return await async_in_thread(
                self.lookups.describe_instance, instance_id, region, account_id, access
            )

    async def _profile_role_arn(self, profile_arn: str, access: AwsAccess) -> str:
        async with self._backend.outbound_slot():
            return await async_in_thread(
                self.lookups.instance_profile_role_arn, profile_arn, access
            )

    async def _check_binds(
        self,
        role: Role,
        role_name: str,
        instance: Ec2Instance,
        *,
        account_id: str,
        access: AwsAccess,
        prefix: str,
    ) -> str | None:
        """Vault's binds; returns the instance profile's role ARN if it had to fetch it."""
        needed = check_instance_binds(
            role, instance, account_id=account_id, role_name=role_name, prefix=prefix
        )
        if needed is None:
            return None
        role_arn = await self._profile_role_arn(needed, access)
        check_instance_binds(
            role,
            instance,
            account_id=account_id,
            role_name=role_name,
            prefix=prefix,
            instance_profile_role_arn=role_arn,
        )
        return role_arn

    async def _check_caller_is_instance(
        self,
        entity: IamEntity,
        instance: Ec2Instance,
        access: AwsAccess,
        role_arn: str | None,
    ) -> None:
        """Ours (session names are chosen by whoever assumes a role): the caller's role
        must be the role of the instance's instance profile, as it is for credentials
        EC2 hands to the instance itself."""
        refusal = InvalidRequestError(
            f"{IAM_INFERENCE_PREFIX}the caller's role {go_quote(entity.friendly_name)} is not "
            f"the role of instance {go_quote(instance.instance_id)}'s instance profile"
        )
        if not instance.iam_instance_profile_arn:
            raise refusal
        if role_arn is None:
            role_arn = await self._profile_role_arn(instance.iam_instance_profile_arn, access)
        try:
            profile_role = parse_iam_arn(role_arn)
        except ArnError:
            raise refusal from None
        if (profile_role.partition, profile_role.account_id, profile_role.friendly_name) != (
            entity.partition,
            entity.account_id,
            entity.friendly_name,
        ):
            raise refusal

    @staticmethod
    def _check_instance_id(instance_id: str) -> None:
        """An inferred instance ID is the caller's session name: its shape is checked
        before any storage read, outbound slot or lookup."""
        if INSTANCE_ID.fullmatch(instance_id) is None:
            raise InvalidRequestError(f"invalid instance ID {go_quote(instance_id[:64])}")

    async def infer_instance(
        self, verified: VerifiedLogin, client_config: cfg.ClientConfig | None = None
    ) -> Ec2Instance:
        """The running instance an IAM login of an ``ec2_instance``-inferring role comes
        from (Vault's inference), with the role's EC2 binds checked against it
        (``client_config``: the one the login already read, if any).

        The instance ID is the assumed-role session name. Stricter than Vault: the caller
        must be an assumed role, and that role must be the one in the instance's profile.
        """
        entity, role = verified.entity, verified.role
        region = role.inferred_aws_region
        instance_id = entity.session_info
        account_id = verified.identity.account
        try:
            if entity.type != "assumed-role":
                raise InvalidRequestError(
                    f"the caller is {go_quote(entity.type)}, not an assumed role whose session "
                    "name is an instance ID"
                )
            self._check_instance_id(instance_id)  # the caller's choice: before any lookup
            access = await self._backend.aws_access(account_id, client_config)
            instance = await self._describe(instance_id, region, account_id, access)
        except BackendError as exc:
            raise type(exc)(
                f"failed to verify {instance_id} as a valid EC2 instance in region {region}: "
                f"{exc.message}"
            ) from None
        role_arn = await self._check_binds(
            role,
            verified.role_name,
            instance,
            account_id=account_id,
            access=access,
            prefix=IAM_INFERENCE_PREFIX,
        )
        await self._check_caller_is_instance(entity, instance, access, role_arn)
        return instance

    async def recheck_inferred(
        self, role: Role, role_name: str, entity: IamEntity, internal: dict[str, str]
    ) -> None:
        """Renewal of an inferred login: the instance still runs, and still passes the
        role's current binds and the caller-is-instance rule (Vault checks only that it
        runs)."""
        instance_id = internal.get("inferred_entity_id", "")
        region = internal.get("inferred_aws_region", "") or role.inferred_aws_region
        account_id = internal.get("account_id", "")
        try:
            self._check_instance_id(instance_id)  # "" for a token issued before inference
            access = await self._backend.aws_access(account_id)
            instance = await self._describe(instance_id, region, account_id, access)
            role_arn = await self._check_binds(
                role,
                role_name,
                instance,
                account_id=account_id,
                access=access,
                prefix=IAM_INFERENCE_PREFIX,
            )
            await self._check_caller_is_instance(entity, instance, access, role_arn)
        except BackendError as exc:
            message = (
                f"failed to renew entry: failed to verify instance ID {go_quote(instance_id)}: "
                f"{exc.message}"
            )
            if isinstance(exc, (RateLimitedError, UpstreamError)):
                # Busy, or AWS failing: not a verdict on the token; the client may retry.
                raise _with_message(exc, message) from None
            raise PermissionDeniedError(message) from None

    # --------------------------------------------------------- the ec2 login

    async def verify_document(self, payload: Ec2LoginPayload) -> IdentityDocument:
        """The identity document of an ``ec2`` login, its signature verified with AWS's
        certificates and the configured ones (no network)."""
        certificates = await load_certificates(self._backend.storage)
        now = self._backend.clock.now()
        if payload.pkcs7:
            content = verify_pkcs7(payload.pkcs7, certificates, now=now)
        else:
            content = verify_identity_signature(
                payload.identity, payload.signature, certificates, now=now
            )
        return parse_identity_document(content)

    async def verify_login(
        self, payload: Ec2LoginPayload, *, remote_addr: str | None = None
    ) -> tuple[VerifiedEc2Login, al.AccessListEntry, Document | None]:
        """Every check of an ``ec2`` login (Vault's ``pathLoginUpdateEc2``, in its order):
        the signed document, the role, the running instance, its binds, the access list's
        nonce rules and the role tag. Returns the login, the access list entry to store
        and the stored document it replaces."""
        checked, stored_doc = await self._check_login(payload, remote_addr)
        verified, entry = self._access_list_step(checked, stored_doc)
        return verified, entry, stored_doc

    async def _check_login(
        self, payload: Ec2LoginPayload, remote_addr: str | None
    ) -> tuple[_CheckedEc2Login, Document | None]:
        """The checks up to and including the role tag, with the nonce rules applied (in
        Vault's place, before the role tag) to the access list entry read here, which is
        returned with the login."""
        backend = self._backend
        if payload.role:
            try:
                role_mod.normalize_role_name(payload.role)
            except InvalidRequestError:
                raise InvalidRequestError("entry for role not found: invalid role name") from None
        await backend.check_rate_limit(remote_addr, payload.role)
        document = await self.verify_document(payload)
        role_name = payload.role or document.image_id
        role = await backend.load_login_role(role_name, quoted=True)
        check_cidrs(role.token.token_bound_cidrs, remote_addr)
        if role.auth_type != "ec2":
            raise InvalidRequestError(f"auth method ec2 not allowed for role {role_name}")
        access = await backend.aws_access(document.account_id)
        try:
            instance = await self._describe(
                document.instance_id, document.region, document.account_id, access
            )
        except BackendError as exc:
            raise type(exc)(f"failed to verify instance ID: {exc.message}") from None
        check_region_bind(role, document.region, role_name)
        await self._check_binds(
            role,
            role_name,
            instance,
            account_id=document.account_id,
            access=access,
            prefix=EC2_LOGIN_PREFIX,
        )
        checked = _CheckedEc2Login(role, role_name, document, instance, payload.nonce)
        stored_doc = await backend.storage.read(checked.key)
        self._access_list_step(checked, stored_doc)  # the nonce rules refuse before the tag
        if role.role_tag:
            grant = await self._role_tag_grant(role, instance)
            checked = attrs.evolve(checked, grant=grant)
        return checked, stored_doc

    def _access_list_step(
        self, checked: _CheckedEc2Login, stored_doc: Document | None
    ) -> tuple[VerifiedEc2Login, al.AccessListEntry]:
        """The nonce rules against ``stored_doc`` (the entry as read, or None), and the
        entry to write over it; with the login as verified (its role's policies narrowed
        by the role tag, the nonce to return)."""
        backend = self._backend
        role, grant, document = checked.role, checked.grant, checked.document
        stored = None if stored_doc is None else _entry(stored_doc)
        reauth = al.check_reauthentication(
            stored,
            nonce=checked.nonce,
            pending_time=document.pending_time,
            role_disallow_reauthentication=role.disallow_reauthentication,
            role_allow_instance_migration=role.allow_instance_migration,
            generated_nonce=str(uuid.uuid4()),
        )
        _, longest = al.max_ttl_bounds(
            backend.settings.max_ttl, role.token.token_max_ttl, grant.max_ttl if grant else 0
        )
        entry = al.next_entry(
            stored,
            reauth,
            role_name=checked.role_name,
            pending_time=document.pending_time,
            tag_disallow_reauthentication=grant.disallow_reauthentication if grant else False,
            now=backend.clock.now(),
            ttl=longest,
        )
        if grant is not None and grant.policies:
            role = attrs.evolve(role, token=attrs.evolve(role.token, token_policies=grant.policies))
        verified = VerifiedEc2Login(
            role=role,
            role_name=checked.role_name,
            document=document,
            instance=checked.instance,
            nonce=reauth.returned_nonce(entry),
            role_tag_max_ttl=grant.max_ttl if grant else 0,
        )
        return verified, entry

    async def _role_tag_grant(self, role: Role, instance: Ec2Instance) -> rt.RoleTagGrant:
        """Vault's ``handleRoleTagLogin``: the instance's tag, verified with the HMAC key
        of the role it names, not deny-listed, and within the role's policies."""
        value = rt.role_tag_value(instance.tag(role.role_tag), role.role_tag)
        tag = rt.parse_role_tag(value)
        tag_role = await self._backend.load_role(tag.role.lower())
        if tag_role is None:
            raise rt.tag_role_not_found(tag.role)
        rt.verify_role_tag(tag, tag_role.hmac_key)
        denied = await self._backend.storage.read(rt.denylist_storage_key(value))
        return rt.check_role_tag(
            tag,
            role_name=role.name,  # stored lower-case, as the tag names it
            role_policies=role.token.token_policies,
            instance_id=instance.instance_id,
            denylisted=denied is not None,
        )

    async def login(
        self, payload: Ec2LoginPayload, data: Mapping[str, Any], remote_addr: str | None
    ) -> Response:
        """Verify an ``ec2`` login, record it in the identity access list and issue a token.

        The access list entry is written conditionally on the version read, before the
        token. When another login or renewal of the instance wrote it in between, the
        entry is read again and the nonce rules re-applied to it, so concurrent requests
        get what they would have got one after the other: a first login racing another
        one with a different nonce gets ``client nonce mismatch``, a renewal or a login
        with the same nonce goes through. If issuing fails, the entry is put back as it
        was.
        """
        backend = self._backend
        checked, stored_doc = await self._check_login(payload, remote_addr)
        key = checked.key
        attempt = 0
        while True:
            attempt += 1
            verified, entry = self._access_list_step(checked, stored_doc)
            put = Put(
                key,
                al.entry_to_storage(entry),
                expect=stored_doc.version if stored_doc else ABSENT,
                expires_at=entry.expiration_time.timestamp(),
            )
            try:
                (version,) = await backend.storage.commit([put])
                break
            except ConflictError:
                if attempt >= _WRITE_ATTEMPTS:
                    raise ConflictError(key) from None
            await ops.backoff(attempt)
            stored_doc = await backend.storage.read(key)
        shortest, _ = al.max_ttl_bounds(
            backend.settings.max_ttl, verified.role.token.token_max_ttl, verified.role_tag_max_ttl
        )
        settings = attrs.evolve(verified.role.token, token_max_ttl=shortest)
        try:
            spec = token_spec(
                verified,
                await backend.identity_config(),
                mount=backend.settings.mount,
                lease=compute_lease(
                    settings,
                    default_ttl=backend.settings.default_ttl,
                    max_ttl=backend.settings.max_ttl,
                ),
                now=backend.clock.now(),
            )
            record = await backend.issuer.issue(spec)
        except BaseException:
            undo = (
                Put(key, stored_doc.value, expect=version, expires_at=stored_doc.expires_at)
                if stored_doc is not None
                else Delete(key, expect=version)
            )
            with contextlib.suppress(Exception):
                await backend.storage.commit([undo])
            raise
        return Response(
            auth=auth_data(record),
            warnings=tuple(unrecognized_warning(data, KNOWN_LOGIN_FIELDS)),
            role=verified.role_name,
        )

    async def renewal_settings(self, record: TokenRecord) -> TokenSettings:
        """Renewal of an ``ec2`` token (Vault's ``pathLoginRenewEc2``): the instance still
        runs, its access list entry and role still exist; the entry's expiry moves on
        (re-read and rewritten when a concurrent login or renewal of the instance wrote
        it first). Stricter than Vault: the role must still be an ``ec2`` role whose binds
        the instance passes. A refusal is a 403; AWS failing or the outbound slots busy
        keep their own error (not a verdict on the token). Returns the token settings to
        renew with (the max TTL lowered by the role tag's)."""
        backend = self._backend
        internal = record.internal_data
        instance_id = internal.get("instance_id", "")
        region = internal.get("region", "")
        account_id = internal.get("account_id", "")

        def refused(reason: str, cause: BackendError | None = None) -> BackendError:
            message = f"failed to renew entry: {reason}"
            if isinstance(cause, (RateLimitedError, UpstreamError)):
                # Busy, or AWS failing: not a verdict on the token; the client may retry.
                return _with_message(cause, message)
            return PermissionDeniedError(message)

        try:
            access = await backend.aws_access(account_id)
            instance = await self._describe(instance_id, region, account_id, access)
        except BackendError as exc:
            raise refused(
                f"failed to verify instance ID {go_quote(instance_id)}: {exc.message}", exc
            ) from None
        key = al.ACCESSLIST_STORAGE_PREFIX + instance_id
        missing = (
            f"failed to verify the access list identity entry for instance ID: "
            f"{go_quote(instance_id)}"
        )
        stored_doc = await backend.storage.read(key)
        if stored_doc is None:
            raise refused(missing)
        stored = _entry(stored_doc)
        role = await backend.load_role(stored.role.lower())
        if role is None:
            raise refused("role entry not found")
        if role.auth_type != "ec2":
            raise refused(f"auth method ec2 not allowed for role {stored.role}")
        try:
            check_region_bind(role, region, stored.role)
            await self._check_binds(
                role,
                stored.role,
                instance,
                account_id=account_id,
                access=access,
                prefix=EC2_LOGIN_PREFIX,
            )
        except BackendError as exc:
            raise refused(exc.message, exc) from None
        tag_max_ttl = parse_duration_seconds(record.metadata.get("role_tag_max_ttl", "0s"))
        shortest, longest = al.max_ttl_bounds(
            backend.settings.max_ttl, role.token.token_max_ttl, tag_max_ttl
        )

        def renew(doc: Document | None) -> list[Put]:
            # The entry as it is at write time: a login or another renewal of the
            # instance may have written it since it was read above (conflicts retried).
            if doc is None:
                raise refused(missing)
            renewed = al.renew_entry(_entry(doc), instance_id, now=backend.clock.now(), ttl=longest)
            expires_at = renewed.expiration_time.timestamp()
            return [Put(key, al.entry_to_storage(renewed), expires_at=expires_at)]

        await ops.update(backend.storage, key, renew, attempts=_WRITE_ATTEMPTS)
        return attrs.evolve(role.token, token_max_ttl=shortest)


def _entry(doc: Document) -> al.AccessListEntry:
    return al.entry_from_storage(doc.value)


def _with_message(exc: BackendError, message: str) -> BackendError:
    """A copy of ``exc`` (same class, status and extras such as ``retry_after``) saying
    ``message``."""
    changed = copy.copy(exc)
    changed.message = message
    changed.args = (message,)
    return changed


__all__ = ["AsyncEc2Auth"]
