# Generated from ../_async/backend.py by scripts/unasync.py: do not edit.
"""The plugin-style entry point: :class:`Backend` answers Vault-shaped requests.

``handle_request(Request) -> Response`` serves every path of the AWS auth method
(relative to its mount); typed methods (``login``, ``write_role``, ...) sit on the same
handlers. All I/O goes through the injected storage, STS transport, IAM lookups, token
issuer and clock; the pure steps come from :mod:`aws_iam_backend.login` and
:mod:`aws_iam_backend.vault`. Both drivers run this one implementation: the sync module is
generated from the async one by ``scripts/unasync.py``.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

import attrs

from aws_iam_backend.drivers._sync.claims import StorageReplayCache
from aws_iam_backend.drivers._sync.ec2 import Ec2Auth
from aws_iam_backend.drivers._sync.ec2_admin import Ec2Admin
from aws_iam_backend.drivers._sync.guards import LoginGuards
from aws_iam_backend.drivers._sync.keys import audit_hasher
from aws_iam_backend.drivers._sync.tokens import StoreTokenIssuer, TokenIssuer
from aws_iam_backend.drivers.audit import (
    AuditEntry,
    AuditFailedError,
    AuditHasher,
    Auditor,
    AuditSink,
    describe_request,
)
from aws_iam_backend.drivers.defaults import default_transport
from aws_iam_backend.drivers.metrics import (
    CHALLENGE,
    NO_METRICS,
    NO_ROLE,
    RATE_LIMITED,
    REPLAY,
    SUCCESS,
    Metrics,
    outcome_of,
)
from aws_iam_backend.drivers.ratelimit import (
    ConcurrencyLimiter,
    LoginRateLimiter,
    RateLimiter,
)
from aws_iam_backend.drivers.replay import ReplayCache
from aws_iam_backend.drivers.shapes import (
    EC2_ROUTES,
    OPERATIONS,
    ROLE_PATH,
    BackendSettings,
    Request,
    Response,
    auth_data,
    list_response,
    route,
    status,
)
from aws_iam_backend.errors import (
    BackendError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    UnsupportedOperationError,
)
from aws_iam_backend.io.clock import Clock, SystemClock
from aws_iam_backend.io.concurrency import in_thread
from aws_iam_backend.io.ec2 import BotocoreEc2Lookups
from aws_iam_backend.io.iam import BotocoreIamLookups, UniqueIdArnCache
from aws_iam_backend.io.protocols import (
    Storage,
    STSTransport,
    AwsAccess,
    Document,
    Ec2Lookups,
    IamLookups,
    Operation,
    Put,
)
from aws_iam_backend.io.storage._sync import ops
from aws_iam_backend.io.storage.memory import MemoryStorage
from aws_iam_backend.login.arn import ArnError, IamEntity, parse_iam_arn
from aws_iam_backend.login.bind import check_binding, check_cidrs, check_full_arn
from aws_iam_backend.login.decode import (
    KNOWN_LOGIN_FIELDS,
    Ec2LoginPayload,
    LoginPayload,
    decode_any_login,
    decode_login,
)
from aws_iam_backend.login.endpoints import lookup_sts_host, partition_of_host
from aws_iam_backend.login.issue import VerifiedLogin, token_spec
from aws_iam_backend.login.messages import OutboundRequest
from aws_iam_backend.login.parse import parse_sts_response
from aws_iam_backend.login.rebuild import build_outbound, validate_allowed_header_names
from aws_iam_backend.vault import config as cfg
from aws_iam_backend.vault import roles as role_mod
from aws_iam_backend.vault.fields import unrecognized_warning
from aws_iam_backend.vault.gocompat import go_quote
from aws_iam_backend.vault.roles import EC2_ENTITY_TYPE, Role
from aws_iam_backend.vault.tokens import TokenRecord
from aws_iam_backend.vault.tokenutil import compute_lease

_ACCOUNT = re.compile(r"[0-9]{12}", re.ASCII)


class Backend:
    """The AWS auth method (IAM login type), embeddable in any Python server.

    ``metrics`` hears of logins, STS calls, outbound calls in flight, refusals and (through
    the default issuer) tokens; see :mod:`aws_iam_backend.drivers.metrics`. Storage calls
    are metered by wrapping ``storage`` in
    :class:`~aws_iam_backend.io.storage._sync.metered.MeteredStorage`.
    """

    def __init__(
        self,
        *,
        storage: Storage | None = None,
        transport: STSTransport | None = None,
        iam: IamLookups | None = None,
        ec2: Ec2Lookups | None = None,
        issuer: TokenIssuer | None = None,
        clock: Clock | None = None,
        settings: BackendSettings | None = None,
        replay_cache: ReplayCache | None = None,
        audit: AuditSink | None = None,
        audit_hasher: AuditHasher | None = None,
        rate_limiter: RateLimiter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics: Metrics = metrics if metrics is not None else NO_METRICS
        self.storage: Storage = storage if storage is not None else MemoryStorage()
        self.clock: Clock = clock or SystemClock()
        self.settings = settings or BackendSettings()
        limits = self.settings.rate_limits
        self.transport: STSTransport = transport or default_transport(
            limits.max_concurrent_sts_calls
        )
        self.iam: IamLookups = iam or BotocoreIamLookups()
        if ec2 is None:
            shared = self.iam.clients if isinstance(self.iam, BotocoreIamLookups) else None
            ec2 = BotocoreEc2Lookups(clients=shared)
        self.ec2_auth = Ec2Auth(self, ec2)
        self.ec2_admin = Ec2Admin(self)
        self.issuer: TokenIssuer = issuer or StoreTokenIssuer(
            self.storage, clock=self.clock, metrics=self.metrics
        )
        self._arn_cache = UniqueIdArnCache()
        self.replay_cache: ReplayCache = (
            replay_cache
            if replay_cache is not None
            else StorageReplayCache(self.storage, clock=self.clock)
        )
        self.guards = LoginGuards(
            storage=self.storage,
            replay_cache=self.replay_cache,
            clock=self.clock,
            max_age=self.settings.request_policy.max_age,
            challenge_ttl=self.settings.challenge_ttl,
        )
        self.rate_limiter: RateLimiter = rate_limiter or LoginRateLimiter(limits)
        self._sts_slots = ConcurrencyLimiter(
            limits.max_concurrent_sts_calls, limits.sts_slot_wait, metrics=self.metrics
        )
        # Normalized names of roles this process has loaded: the only role names a metric
        # label or log line shows (a failed login's role is the client's choice).
        self._known_roles: set[str] = set()
        self.audit = audit
        self._audit_hasher = audit_hasher
        self._auditor: Auditor | None = None

    # ----------------------------------------------------------------- routing

    def handle_request(self, request: Request) -> Response:
        """Serve one request; raise a :class:`~aws_iam_backend.errors.BackendError` on failure.

        With an audit sink, writes one record per request (see
        :mod:`aws_iam_backend.drivers.audit`).
        """
        if self.audit is None:
            return self._serve(request)
        auditor = self._get_auditor(self.audit)
        entry = self._audit_entry(request)
        try:
            response = self._serve(request)
        except BackendError as exc:
            auditor.write(entry, status=exc.status, error=exc.message)
            raise
        except Exception:
            auditor.write(entry, status=500, error="internal error")
            raise
        if response.role:
            entry.role = response.role
        try:
            auditor.write(
                entry,
                status=status(request.operation, response),
                auth=response.auth,
                principal=response.principal,
            )
        except AuditFailedError:
            token = (response.auth or {}).get("client_token")
            if request.operation in ("create", "update") and token:
                # A login (iam or ec2; a renewal's token was handed out before): never
                # hand out a token that was not audited.
                self.issuer.revoke(token)
            raise
        return response

    def _get_auditor(self, sink: AuditSink) -> Auditor:
        if self._auditor is None:
            hasher = self._audit_hasher or audit_hasher(self.storage)
            self._auditor = Auditor(
                sink, hasher, required=self.settings.audit_required, clock=self.clock
            )
        return self._auditor

    def _audit_entry(self, request: Request) -> AuditEntry:
        mount = self.settings.mount
        path = request.path.strip("/")
        entry = AuditEntry(
            request_id=request.request_id or str(uuid.uuid4()),
            operation=request.operation,
            path=f"auth/{mount}{path}",
            mount=mount,
            remote_address=request.remote_addr,
            client_token=request.client_token,
        )
        if match := ROLE_PATH.fullmatch(path):
            entry.role = match["name"]
        describe_request(entry, path, request.data)
        return entry

    def _serve(self, request: Request) -> Response:
        operation = request.operation
        if operation not in OPERATIONS:
            raise UnsupportedOperationError()
        name, argument = route(request.path)
        write = operation in ("create", "update")
        data = request.data
        if name == "login":
            if write:
                return self.login(data, remote_addr=request.remote_addr)
            if operation == "renew":
                return self._renew_request(request)
        elif name == "challenge":
            if write or operation == "read":
                return Response(data=self.issue_challenge())
        elif name == "role":
            if operation == "list":
                return self.list_roles()
        elif name == "role/":
            if write:
                return Response(warnings=tuple(self.write_role(argument, data)))
            if operation == "read":
                return Response(data=self.read_role(argument))
            if operation == "delete":
                self.delete_role(argument)
                return Response()
        elif name == "config/client":
            if write:
                return Response(warnings=tuple(self.write_client_config(data)))
            if operation == "read":
                return Response(data=self.read_client_config())
            if operation == "delete":
                self.delete_client_config()
                return Response()
        elif name == "config/identity":
            if write:
                return Response(warnings=tuple(self.write_identity_config(data)))
            if operation == "read":
                return Response(data=self.read_identity_config())
        elif name == "config/sts":
            if operation == "list":
                return self.list_sts_configs()
        elif name == "config/sts/":
            if write:
                return Response(warnings=tuple(self.write_sts_config(argument, data)))
            if operation == "read":
                return Response(data=self.read_sts_config(argument))
            if operation == "delete":
                self.delete_sts_config(argument)
                return Response()
        elif name in EC2_ROUTES:
            return self.ec2_admin.handle(name, argument, operation, data)
        raise UnsupportedOperationError()

    # ------------------------------------------------------------------- login

    def login(self, data: Mapping[str, Any], *, remote_addr: str | None = None) -> Response:
        """Verify a Vault-style login payload (``iam``, or ``ec2``) and issue a token
        (``auth`` in the response). Reported to ``metrics`` with its outcome."""
        try:
            payload = decode_any_login(data)
            if isinstance(payload, Ec2LoginPayload):
                response = self.ec2_auth.login(payload, data, remote_addr)
            else:
                verified = self._verify_iam(payload, remote_addr)
                identity_config = self.identity_config()
                spec = token_spec(
                    verified,
                    identity_config,
                    mount=self.settings.mount,
                    lease=compute_lease(
                        verified.role.token,
                        default_ttl=self.settings.default_ttl,
                        max_ttl=self.settings.max_ttl,
                    ),
                    now=self.clock.now(),
                )
                record = self.issuer.issue(spec)
                response = Response(
                    auth=auth_data(record),
                    warnings=tuple(unrecognized_warning(data, KNOWN_LOGIN_FIELDS)),
                    principal=verified.identity,
                    role=verified.role_name,
                )
        except BaseException as exc:
            self.metrics.login(self.settings.mount, self.role_label(data), outcome_of(exc))
            raise
        role = response.role.lower() if response.role else NO_ROLE
        self.metrics.login(self.settings.mount, role, SUCCESS)
        return response

    def role_label(self, data: Mapping[str, Any]) -> str:
        """The role a login payload names, lower-cased, if this process has seen it exist;
        else :data:`~aws_iam_backend.drivers.metrics.NO_ROLE` (a bounded label)."""
        role = data.get("role")
        if isinstance(role, str) and 0 < len(role) <= role_mod.MAX_ROLE_NAME_LENGTH:
            key = role.lower()
            if key in self._known_roles:
                return key
        return NO_ROLE

    def verify_login(
        self, data: Mapping[str, Any], *, remote_addr: str | None = None
    ) -> VerifiedLogin:
        """All of an IAM login except issuing the token: decode, validate, ask STS, load and
        bind the role (and check the inferred EC2 instance when the role infers one)."""
        return self._verify_iam(decode_login(data), remote_addr)

    def _verify_iam(self, payload: LoginPayload, remote_addr: str | None) -> VerifiedLogin:
        if payload.role:  # empty: the principal's friendly name (STS-vouched), checked later
            # Vault's grammar before the rate limiter: a name no role can have is refused
            # here, as load_login_role would, and never keys a bucket.
            try:
                role_mod.normalize_role_name(payload.role)
            except InvalidRequestError:
                raise InvalidRequestError("entry for role not found: invalid role name") from None
        self.check_rate_limit(remote_addr, payload.role)
        client_config = self._client_config()
        outbound = build_outbound(
            payload,
            client_config,
            now=self.clock.now(),
            policy=self.settings.request_policy,
        )
        challenged = client_config.require_challenge
        if challenged:
            self._check_challenge(payload, outbound)
        claimed = self._claim_signature(outbound) if client_config.replay_protection else None
        try:
            with self._sts_slots.slot():
                started = time.perf_counter()
                try:
                    response = self.transport.send(
                        outbound,
                        timeout=self.settings.sts_timeout,
                        max_retries=client_config.max_retries,
                    )
                    sts_host = lookup_sts_host(outbound.host)
                    identity = parse_sts_response(
                        response,
                        expected_partition=(
                            sts_host.partition if sts_host else partition_of_host(outbound.host)
                        ),
                    )
                except BaseException as exc:
                    self.metrics.sts_call(time.perf_counter() - started, outcome_of(exc))
                    raise
                self.metrics.sts_call(time.perf_counter() - started, SUCCESS)
        except BaseException:
            # STS never vouched for it (an error, or the caller went away): not used.
            if claimed is not None:
                with contextlib.suppress(Exception):
                    self.guards.release(claimed)
            raise
        try:
            entity = parse_iam_arn(identity.arn)
        except ArnError as exc:
            raise InvalidRequestError(
                f"error parsing arn {go_quote(identity.arn)}: {exc}"
            ) from None
        role_name = payload.role or entity.friendly_name
        role = self.load_login_role(role_name)
        check_cidrs(role.token.token_bound_cidrs, remote_addr)
        if role.auth_type != "iam":
            raise InvalidRequestError(f"auth method iam not allowed for role {role_name}")
        verified = VerifiedLogin(role, role_name, entity, identity, outbound)
        bound = check_binding(role, entity, verified.client_user_id)
        if bound is None:
            full_arn = self._full_arn(
                entity, verified.client_user_id, role_name, "attempting login", client_config
            )
            bound = check_full_arn(role, entity, full_arn)
        if not bound:
            raise InvalidRequestError(
                f'IAM Principal "{identity.arn}" does not belong to the role "{role_name}"'
            )
        if role.require_challenge and not challenged:
            self._check_challenge(payload, outbound)
        if role.inferred_entity_type == EC2_ENTITY_TYPE:
            instance = self.ec2_auth.infer_instance(verified, client_config)
            verified = attrs.evolve(verified, instance=instance)
        return verified

    def check_rate_limit(self, remote_addr: str | None, role: str | None) -> None:
        """Spend one login of ``remote_addr``'s and ``role``'s buckets (``rate_limiter``);
        a refusal (429) is reported to ``metrics``."""
        try:
            self.rate_limiter.check(remote_addr, role)
        except RateLimitedError:
            self.metrics.refused(RATE_LIMITED)
            raise

    def _check_challenge(self, payload: LoginPayload, outbound: OutboundRequest) -> None:
        try:
            self.guards.check_challenge(payload, outbound)
        except InvalidRequestError:
            self.metrics.refused(CHALLENGE)
            raise

    def _claim_signature(self, outbound: OutboundRequest) -> str:
        try:
            return self.guards.claim_signature(outbound)
        except InvalidRequestError:
            self.metrics.refused(REPLAY)
            raise

    def issue_challenge(self) -> dict[str, Any]:
        """A new server challenge: the nonce, its lifetime and the header to sign it in."""
        return self.guards.issue_challenge()

    def load_login_role(self, role_name: str, *, quoted: bool = False) -> Role:
        """The role a login names, or ``entry for role <name> not found`` (400; the name
        Go-quoted with ``quoted``, as Vault's ec2 login words it)."""
        try:
            key = role_mod.normalize_role_name(role_name)
        except InvalidRequestError:
            raise InvalidRequestError("entry for role not found: invalid role name") from None
        role = self.load_role(key)
        if role is None:
            shown = go_quote(role_name) if quoted else role_name
            raise InvalidRequestError(f"entry for role {shown} not found")
        return role

    def _full_arn(
        self,
        entity: IamEntity,
        client_user_id: str,
        role_name: str,
        when: str,
        client_config: cfg.ClientConfig | None = None,
    ) -> str:
        key = (entity.partition, entity.account_id, client_user_id)
        cached = self._arn_cache.get(key)
        if cached is not None:
            return cached
        try:
            access = self.aws_access(entity.account_id, client_config)
            with self.outbound_slot():
                arn = in_thread(self.iam.full_arn, entity, access)
        except BackendError as exc:
            raise type(exc)(
                f"error looking up full ARN of entity {entity.go_repr()} when {when} "
                f'for role "{role_name}": {exc.message}'
            ) from None
        if not arn:
            raise InvalidRequestError(
                f"got empty string back when looking up full ARN of entity {entity.go_repr()} "
                f'when {when} for role "{role_name}"'
            )
        self._arn_cache.put(key, arn)
        return arn

    # ----------------------------------------------------------------- tokens

    def _renew_request(self, request: Request) -> Response:
        if not request.client_token:
            raise PermissionDeniedError()
        record = self.renew_token(request.client_token, remote_addr=request.remote_addr)
        return Response(auth=auth_data(record))

    def lookup_token(self, token: str, *, remote_addr: str | None = None) -> TokenRecord:
        """The live token ``token`` (its bound CIDRs checked), or :class:`PermissionDeniedError`."""
        record = self.issuer.lookup(token)
        if record is None:
            raise PermissionDeniedError()
        check_cidrs(record.bound_cidrs, remote_addr)
        return record

    def renew_token(
        self, token: str, *, remote_addr: str | None = None, increment: int = 0
    ) -> TokenRecord:
        """Renew a login token after re-checking its binding against the current role.

        The new TTL is ``increment`` seconds when positive (Vault's renew ``increment``),
        else the role's current TTL; either way capped by the max TTLs. Periodic tokens
        renew for their period.
        """
        if increment < 0:
            raise InvalidRequestError("increment must not be negative")
        record = self.lookup_token(token, remote_addr=remote_addr)
        if not record.renewable:
            raise InvalidRequestError("token is not renewable")
        if record.internal_data.get("auth_type") == "ec2":
            settings = self.ec2_auth.renewal_settings(record)
        else:
            settings = (self._check_renewal(record)).token
        lease = compute_lease(
            settings, default_ttl=self.settings.default_ttl, max_ttl=self.settings.max_ttl
        )
        return self.issuer.extend(
            token,
            ttl=increment or lease.ttl,
            now=self.clock.now(),
            max_ttl=lease.max_ttl,
            period=lease.period,
        )

    def _check_renewal(self, record: TokenRecord) -> Role:
        internal = record.internal_data
        canonical_arn = internal.get("canonical_arn", "")
        role_name = internal.get("role_name", "")
        if not canonical_arn:
            raise PermissionDeniedError(
                'failed to renew entry: "canonical_arn" not found in auth metadata'
            )
        if not role_name:
            raise PermissionDeniedError(
                "failed to renew entry: error retrieving role_name during renewal"
            )
        role = self.load_role(role_name.lower())
        if role is None:
            raise PermissionDeniedError("failed to renew entry: role entry not found")
        try:
            entity = parse_iam_arn(canonical_arn)
        except ArnError as exc:
            raise PermissionDeniedError(f"failed to renew entry: {exc}") from None
        client_user_id = internal.get("client_user_id", "")
        bound = check_binding(role, entity, client_user_id)
        if bound is None:
            full_arn = self._full_arn(entity, client_user_id, role_name, "updating login")
            bound = check_full_arn(role, entity, full_arn)
        if not bound or role.auth_type != "iam":
            raise PermissionDeniedError(
                f'failed to renew entry: role "{role_name}" no longer bound to ARN '
                f'"{canonical_arn}"'
            )
        if role.inferred_entity_type == EC2_ENTITY_TYPE:
            self.ec2_auth.recheck_inferred(role, role_name, entity, internal)
        return role

    def revoke_token(self, token: str) -> None:
        """Revoke a token (no error if it does not exist)."""
        self.issuer.revoke(token)

    def revoke_accessor(self, accessor: str) -> None:
        """Revoke the token with this accessor (no error if it does not exist)."""
        self.issuer.revoke_accessor(accessor)

    # ------------------------------------------------------------------ roles

    def write_role(self, name: str, data: Mapping[str, Any]) -> list[str]:
        """Create or update ``role/<name>``; returns Vault's warnings.

        A conditional write on the role just read: two admins writing one role at once
        each see the other's change (the later one is recomputed), none is lost. Unique
        IDs are resolved (IAM, on a worker thread) before the write.
        """
        key = role_mod.normalize_role_name(name)
        client_config = self._client_config()
        resolved: dict[str, str] = {}  # unique IDs from IAM, fetched outside the update
        warnings: list[str] = []

        def unique_id(arn: str) -> str:
            if arn not in resolved:
                raise _NeedsUniqueId(arn)
            return resolved[arn]

        def change(doc: Document | None) -> list[Operation]:
            existing = None if doc is None else role_mod.role_from_storage(key, dict(doc.value))
            role, found = role_mod.write_role(
                existing,
                data,
                name=key,
                new_role_id=str(uuid.uuid4()),
                new_hmac_key=secrets.token_urlsafe(32),
                resolve_unique_id=unique_id,
                system_max_ttl=self.settings.max_ttl,
                system_default_ttl=self.settings.default_ttl,
            )
            warnings[:] = found
            return [Put(f"role/{key}", role_mod.role_to_storage(role))]

        while True:
            try:
                ops.update(self.storage, f"role/{key}", change)
                break
            except _NeedsUniqueId as needed:
                try:
                    resolved[needed.arn] = self._resolve_unique_id(needed.arn, client_config)
                except BackendError as exc:
                    raise role_mod.resolution_error(needed.arn, exc) from exc
        self._known_roles.add(key)
        return warnings + unrecognized_warning(data, role_mod.ROLE_FIELDS)

    def _resolve_unique_id(self, arn: str, client_config: cfg.ClientConfig) -> str:
        try:
            entity = parse_iam_arn(arn)
        except ArnError as exc:
            raise InvalidRequestError(str(exc)) from None
        access = self.aws_access(entity.account_id, client_config)
        return in_thread(self.iam.unique_id, entity, access)

    def read_role(self, name: str) -> dict[str, Any]:
        """``role/<name>`` in Vault's read shape; :class:`NotFoundError` if absent."""
        role = self.load_role(role_mod.normalize_role_name(name))
        if role is None:
            raise NotFoundError("")
        return role_mod.role_read_data(role)

    def delete_role(self, name: str) -> None:
        """Delete ``role/<name>`` (no error if absent)."""
        key = role_mod.normalize_role_name(name)
        ops.delete(self.storage, f"role/{key}")
        self._known_roles.discard(key)

    def list_roles(self) -> Response:
        """Role names, as Vault's LIST answers them."""
        return list_response(self.storage.list("role/"))

    def load_role(self, key: str) -> Role | None:
        """The role stored under ``key`` (a normalized name), upgraded; None if absent."""
        doc = self.storage.read(f"role/{key}")
        if doc is None:
            self._known_roles.discard(key)
            return None
        self._known_roles.add(key)
        role = role_mod.role_from_storage(key, doc.value)
        if doc.value.get("version", 0) != role.version:
            # Persist Vault's storage upgrade once, so the new role_id sticks; if another
            # writer got there first, its document wins.
            with contextlib.suppress(ConflictError):
                self.storage.commit(
                    [Put(f"role/{key}", role_mod.role_to_storage(role), expect=doc.version)]
                )
        return role

    # ----------------------------------------------------------------- config

    def _client_config(self) -> cfg.ClientConfig:
        doc = ops.get(self.storage, "config/client")
        return cfg.ClientConfig() if doc is None else cfg.client_config_from_storage(doc)

    def identity_config(self) -> cfg.IdentityConfig:
        """``config/identity`` (Vault's defaults when never written)."""
        doc = ops.get(self.storage, "config/identity")
        return cfg.IdentityConfig() if doc is None else cfg.identity_config_from_storage(doc)

    def write_client_config(self, data: Mapping[str, Any]) -> list[str]:
        """Create or update ``config/client``."""

        def change(doc: Document | None) -> list[Operation]:
            existing = None if doc is None else cfg.client_config_from_storage(doc.value)
            new = cfg.write_client_config(
                existing, data, validate_headers=validate_allowed_header_names
            )
            return [Put("config/client", cfg.client_config_to_storage(new))]

        ops.update(self.storage, "config/client", change)
        self._flush_aws_caches()
        return unrecognized_warning(data, cfg.CLIENT_CONFIG_FIELDS)

    def read_client_config(self) -> dict[str, Any]:
        """``config/client`` without ``secret_key``; :class:`NotFoundError` if never written."""
        doc = ops.get(self.storage, "config/client")
        if doc is None:
            raise NotFoundError("")
        return cfg.client_config_read_data(cfg.client_config_from_storage(doc))

    def delete_client_config(self) -> None:
        """Delete ``config/client``."""
        ops.delete(self.storage, "config/client")
        self._flush_aws_caches()

    def _flush_aws_caches(self) -> None:
        clear = getattr(self.iam, "clear", None)
        if callable(clear):
            clear()
        self._arn_cache.clear()

    def write_identity_config(self, data: Mapping[str, Any]) -> list[str]:
        """Create or update ``config/identity``; returns Vault's warnings."""

        def change(doc: Document | None) -> list[Operation]:
            existing = (
                cfg.IdentityConfig() if doc is None else cfg.identity_config_from_storage(doc.value)
            )
            new = cfg.write_identity_config(existing, data)
            return [Put("config/identity", cfg.identity_config_to_storage(new))]

        ops.update(self.storage, "config/identity", change)
        return unrecognized_warning(data, cfg.IDENTITY_CONFIG_FIELDS)

    def read_identity_config(self) -> dict[str, Any]:
        """``config/identity`` (defaults when never written)."""
        return cfg.identity_config_read_data(self.identity_config())

    def write_sts_config(self, account_id: str, data: Mapping[str, Any]) -> list[str]:
        """Create or update ``config/sts/<account_id>``; returns Vault's warnings."""
        key = f"config/sts/{account_id}"

        def change(doc: Document | None) -> list[Operation]:
            existing = None if doc is None else cfg.sts_config_from_storage(account_id, doc.value)
            entry = cfg.write_sts_config(account_id, data, existing=existing)
            return [Put(key, cfg.sts_config_to_storage(entry))]

        ops.update(self.storage, key, change)
        return unrecognized_warning(data, cfg.STS_CONFIG_FIELDS)

    def read_sts_config(self, account_id: str) -> dict[str, Any]:
        """``config/sts/<account_id>``; :class:`NotFoundError` if absent."""
        entry = self._sts_config(account_id)
        if entry is None:
            raise NotFoundError("")
        return cfg.sts_config_read_data(entry)

    def delete_sts_config(self, account_id: str) -> None:
        """Delete ``config/sts/<account_id>``."""
        ops.delete(self.storage, f"config/sts/{account_id}")

    def list_sts_configs(self) -> Response:
        """Account IDs with an STS role configured."""
        return list_response(self.storage.list("config/sts/"))

    def _sts_config(self, account_id: str) -> cfg.StsRoleConfig | None:
        if not _ACCOUNT.fullmatch(account_id):
            return None
        doc = ops.get(self.storage, f"config/sts/{account_id}")
        return None if doc is None else cfg.sts_config_from_storage(account_id, doc)

    def outbound_slot(self) -> AbstractContextManager[None]:
        """One of the slots every outbound AWS call holds (``max_concurrent_sts_calls``)."""
        return self._sts_slots.slot()

    def aws_access(
        self, account_id: str, client_config: cfg.ClientConfig | None = None
    ) -> AwsAccess:
        """The credentials and endpoints for AWS calls about ``account_id``'s principals."""
        client = client_config or self._client_config()
        sts = self._sts_config(account_id)
        return AwsAccess(
            access_key=client.access_key,
            secret_key=client.secret_key,
            iam_endpoint=client.iam_endpoint,
            ec2_endpoint=client.endpoint,
            sts_endpoint=client.sts_endpoint,
            sts_region=client.sts_region,
            sts_role=sts.sts_role if sts else None,
            external_id=(sts.external_id or None) if sts else None,
            max_retries=client.max_retries,
        )


class _NeedsUniqueId(Exception):
    """Raised out of a pure role computation that needs an ARN's unique ID from IAM."""

    def __init__(self, arn: str) -> None:
        super().__init__(arn)
        self.arn = arn


__all__ = ["Backend"]
