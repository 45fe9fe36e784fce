"""The plugin-style entry point: :class:`Backend` answers Vault-shaped requests.

``Backend.handle_request(Request) -> Response`` serves every path of the AWS auth
method (relative to its mount); typed methods (``login``, ``write_role``, ...) sit on
the same handlers. All I/O goes through the injected storage, STS transport, IAM
lookups, token issuer and clock.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from aws_iam_backend.drivers._sync.audit import (
    AuditEntry,
    AuditFailedError,
    AuditHasher,
    Auditor,
    AuditSink,
    describe_request,
)
from aws_iam_backend.drivers._sync.guards import LoginGuards
from aws_iam_backend.drivers._sync.ratelimit import (
    ConcurrencyLimiter,
    LoginRateLimiter,
    RateLimiter,
    RateLimits,
)
from aws_iam_backend.drivers._sync.replay import ReplayCache, StorageReplayCache
from aws_iam_backend.drivers._sync.tokens import (
    StoreTokenIssuer,
    TokenIssuer,
    TokenRecord,
    TokenSpec,
)
from aws_iam_backend.errors import (
    BackendError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    UnsupportedOperationError,
)
from aws_iam_backend.io.clock import Clock, SystemClock
from aws_iam_backend.io.iam import BotocoreIamLookups, UniqueIdArnCache
from aws_iam_backend.io.protocols import (
    AwsAccess,
    Document,
    IamLookups,
    Operation,
    Put,
    Storage,
    STSTransport,
)
from aws_iam_backend.io.storage import MemoryStorage, ops
from aws_iam_backend.io.transport import BotocoreTransport
from aws_iam_backend.login.arn import ArnError, IamEntity, parse_iam_arn
from aws_iam_backend.login.bind import check_binding, check_cidrs
from aws_iam_backend.login.challenge import DEFAULT_CHALLENGE_TTL
from aws_iam_backend.login.decode import KNOWN_LOGIN_FIELDS, decode_login
from aws_iam_backend.login.endpoints import lookup_sts_host, partition_of_host
from aws_iam_backend.login.issue import VerifiedLogin, entity_id
from aws_iam_backend.login.messages import CallerIdentity
from aws_iam_backend.login.parse import parse_sts_response
from aws_iam_backend.login.rebuild import (
    RequestPolicy,
    build_outbound,
    validate_allowed_header_names,
)
from aws_iam_backend.vault import config as cfg
from aws_iam_backend.vault import roles as role_mod
from aws_iam_backend.vault.fields import unrecognized_warning
from aws_iam_backend.vault.gocompat import go_quote
from aws_iam_backend.vault.roles import Role
from aws_iam_backend.vault.tokenutil import compute_lease

OPERATIONS = frozenset({"read", "create", "update", "delete", "list", "renew"})
DEFAULT_TTL = 768 * 3600


@attrs.frozen
class BackendSettings:
    """Server-wide settings (not stored; given by the host application)."""

    mount: str = "aws/"
    default_ttl: int = DEFAULT_TTL
    max_ttl: int = DEFAULT_TTL
    sts_timeout: float = 10.0
    request_policy: RequestPolicy = attrs.field(factory=RequestPolicy)
    challenge_ttl: int = DEFAULT_CHALLENGE_TTL  # seconds a server challenge nonce is valid
    rate_limits: RateLimits = attrs.field(factory=RateLimits)
    audit_required: bool = True


@attrs.frozen
class Request:
    """One request to the auth method, like Vault's ``logical.Request``."""

    operation: str
    path: str
    data: Mapping[str, Any] = attrs.field(factory=dict)
    client_token: str | None = attrs.field(default=None, repr=False)
    remote_addr: str | None = None
    request_id: str = ""


@attrs.frozen
class Response:
    """What a handler returns: ``data`` for reads, ``auth`` for logins and renewals."""

    data: dict[str, Any] | None = None
    auth: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    # For the audit record only; never serialised.
    principal: CallerIdentity | None = attrs.field(default=None, repr=False, eq=False)
    role: str | None = attrs.field(default=None, repr=False, eq=False)


_ROLE_PATH = re.compile(r"role/(?P<name>[^/]+)")
_STS_PATH = re.compile(r"config/sts/(?P<account>[^/]+)")


class Backend:
    """The AWS auth method (IAM login type), embeddable in any Python server."""

    def __init__(
        self,
        *,
        storage: Storage | None = None,
        transport: STSTransport | None = None,
        iam: IamLookups | None = None,
        issuer: TokenIssuer | None = None,
        clock: Clock | None = None,
        settings: BackendSettings | None = None,
        replay_cache: ReplayCache | None = None,
        audit: AuditSink | None = None,
        audit_hasher: AuditHasher | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.storage: Storage = storage if storage is not None else MemoryStorage()
        self.clock: Clock = clock or SystemClock()
        self.transport: STSTransport = transport or BotocoreTransport()
        self.iam: IamLookups = iam or BotocoreIamLookups()
        self.issuer: TokenIssuer = issuer or StoreTokenIssuer(self.storage, clock=self.clock)
        self.settings = settings or BackendSettings()
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
        limits = self.settings.rate_limits
        self._rate_limiter: RateLimiter = rate_limiter or LoginRateLimiter(limits)
        self._sts_slots = ConcurrencyLimiter(limits.max_concurrent_sts_calls, limits.sts_slot_wait)
        self.audit = audit
        self._auditor: Auditor | None = None
        if audit is not None:
            hasher = audit_hasher or AuditHasher.from_storage(self.storage)
            self._auditor = Auditor(
                audit, hasher, required=self.settings.audit_required, clock=self.clock
            )

    # ----------------------------------------------------------------- routing

    def handle_request(self, request: Request) -> Response:
        """Serve one request; raise a :class:`~aws_iam_backend.errors.BackendError` on failure.

        With an audit sink, writes one record per request (see :mod:`aws_iam_backend.drivers._sync.audit`).
        """
        if self._auditor is None:
            return self._serve(request)
        entry = self._audit_entry(request)
        try:
            response = self._serve(request)
        except BackendError as exc:
            self._auditor.write(entry, status=exc.status, error=exc.message)
            raise
        except Exception:
            self._auditor.write(entry, status=500, error="internal error")
            raise
        if response.role:
            entry.role = response.role
        try:
            self._auditor.write(
                entry,
                status=_status(request.operation, response),
                auth=response.auth,
                principal=response.principal,
            )
        except AuditFailedError:
            token = (response.auth or {}).get("client_token")
            if response.principal is not None and token:
                self.issuer.revoke(token)  # never hand out a token that was not audited
            raise
        return response

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
        if match := _ROLE_PATH.fullmatch(path):
            entry.role = match["name"]
        describe_request(entry, path, request.data)
        return entry

    def _serve(self, request: Request) -> Response:
        if request.operation not in OPERATIONS:
            raise UnsupportedOperationError()
        handler = self._route(request.operation, request.path.strip("/"))
        return handler(request)

    def _route(self, operation: str, path: str) -> Callable[[Request], Response]:
        write = operation in ("create", "update")
        table: dict[str, Callable[[Request], Response]]
        if path == "login":
            table = {"renew": self._renew_request}
            if write:
                return self._login_request
        elif path == "challenge":
            table = {"read": lambda _r: Response(data=self.issue_challenge())}
            if write:
                return lambda _r: Response(data=self.issue_challenge())
        elif path in ("role", "roles"):
            table = {"list": lambda _r: self.list_roles()}
        elif path == "config/client":
            table = {
                "read": lambda _r: Response(data=self.read_client_config()),
                "delete": lambda _r: self._deleted(self.delete_client_config),
            }
            if write:
                return lambda r: Response(warnings=tuple(self.write_client_config(r.data)))
        elif path == "config/identity":
            table = {"read": lambda _r: Response(data=self.read_identity_config())}
            if write:
                return lambda r: Response(warnings=tuple(self.write_identity_config(r.data)))
        elif path == "config/sts":
            table = {"list": lambda _r: self.list_sts_configs()}
        elif match := _ROLE_PATH.fullmatch(path):
            name = match["name"]
            table = {
                "read": lambda _r: Response(data=self.read_role(name)),
                "delete": lambda _r: self._deleted(lambda: self.delete_role(name)),
            }
            if write:
                return lambda r: Response(warnings=tuple(self.write_role(name, r.data)))
        elif match := _STS_PATH.fullmatch(path):
            account = match["account"]
            table = {
                "read": lambda _r: Response(data=self.read_sts_config(account)),
                "delete": lambda _r: self._deleted(lambda: self.delete_sts_config(account)),
            }
            if write:
                return lambda r: Response(warnings=tuple(self.write_sts_config(account, r.data)))
        else:
            raise NotFoundError("unsupported path")
        handler = table.get(operation)
        if handler is None:
            raise UnsupportedOperationError()
        return handler

    @staticmethod
    def _deleted(action: Callable[[], object]) -> Response:
        action()
        return Response()

    # ------------------------------------------------------------------- login

    def _login_request(self, request: Request) -> Response:
        return self.login(request.data, remote_addr=request.remote_addr)

    def login(self, data: Mapping[str, Any], *, remote_addr: str | None = None) -> Response:
        """Verify a Vault-style IAM login payload and issue a token (``auth`` in the response)."""
        verified = self.verify_login(data, remote_addr=remote_addr)
        identity_config = self._identity_config()
        record = self._issue(verified, identity_config)
        warnings = unrecognized_warning(data, KNOWN_LOGIN_FIELDS)
        return Response(
            auth=auth_data(record),
            warnings=tuple(warnings),
            principal=verified.identity,
            role=verified.role_name,
        )

    def verify_login(
        self, data: Mapping[str, Any], *, remote_addr: str | None = None
    ) -> VerifiedLogin:
        """All of login except issuing the token: decode, validate, ask STS, load and bind role."""
        payload = decode_login(data)
        if payload.role:  # empty: the principal's friendly name (STS-vouched), checked later
            # Vault's grammar before the rate limiter: a name no role can have is refused
            # here, as _role_for_login would, and never keys a bucket.
            try:
                role_mod.normalize_role_name(payload.role)
            except InvalidRequestError:
                raise InvalidRequestError("entry for role not found: invalid role name") from None
        self._rate_limiter.check(remote_addr, payload.role)
        client_config = self._client_config()
        outbound = build_outbound(
            payload,
            client_config,
            now=self.clock.now(),
            policy=self.settings.request_policy,
        )
        challenged = client_config.require_challenge
        if challenged:
            self.guards.check_challenge(payload, outbound)
        claimed = self.guards.claim_signature(outbound) if client_config.replay_protection else None
        try:
            with self._sts_slots.slot():
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
        except BackendError:
            if claimed is not None:  # STS never vouched for it: the signature was not used
                self.guards.release(claimed)
            raise
        try:
            entity = parse_iam_arn(identity.arn)
        except ArnError as exc:
            raise InvalidRequestError(
                f"error parsing arn {go_quote(identity.arn)}: {exc}"
            ) from None
        role_name = payload.role or entity.friendly_name
        role = self._role_for_login(role_name)
        check_cidrs(role.token.token_bound_cidrs, remote_addr)
        if role.auth_type != "iam":
            raise InvalidRequestError(f"auth method iam not allowed for role {role_name}")
        verified = VerifiedLogin(role, role_name, entity, identity, outbound)
        if not check_binding(
            role,
            entity,
            verified.client_user_id,
            lambda: self._full_arn(entity, verified.client_user_id, role_name, "attempting login"),
        ):
            raise InvalidRequestError(
                f'IAM Principal "{identity.arn}" does not belong to the role "{role_name}"'
            )
        if role.require_challenge and not challenged:
            self.guards.check_challenge(payload, outbound)
        return verified

    def issue_challenge(self) -> dict[str, Any]:
        """A new server challenge: the nonce, its lifetime and the header to sign it in."""
        return self.guards.issue_challenge()

    def _role_for_login(self, role_name: str) -> Role:
        try:
            key = role_mod.normalize_role_name(role_name)
        except InvalidRequestError:
            raise InvalidRequestError("entry for role not found: invalid role name") from None
        role = self._load_role(key)
        if role is None:
            raise InvalidRequestError(f"entry for role {role_name} not found")
        return role

    def _full_arn(self, entity: IamEntity, client_user_id: str, role_name: str, when: str) -> str:
        key = (entity.partition, entity.account_id, client_user_id)
        cached = self._arn_cache.get(key)
        if cached is not None:
            return cached
        try:
            arn = self.iam.full_arn(entity, self._aws_access(entity.account_id))
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

    def _issue(self, verified: VerifiedLogin, identity_config: cfg.IdentityConfig) -> TokenRecord:
        settings = verified.role.token
        policies = list(settings.token_policies)
        if not settings.token_no_default_policy and "default" not in policies:
            policies.insert(0, "default")
        lease = compute_lease(
            settings, default_ttl=self.settings.default_ttl, max_ttl=self.settings.max_ttl
        )
        alias = verified.alias_name(identity_config)
        mount = self.settings.mount
        spec = TokenSpec(
            policies=tuple(sorted(policies)),
            token_policies=tuple(sorted(policies)),
            metadata=verified.metadata(identity_config),
            internal_data=verified.internal_data(),
            display_name=f"{mount.strip('/').replace('/', '-')}-{verified.entity.display_name}",
            ttl=lease.ttl,
            max_ttl=lease.max_ttl,
            explicit_max_ttl=lease.explicit_max_ttl,
            period=lease.period,
            num_uses=settings.token_num_uses,
            bound_cidrs=settings.token_bound_cidrs,
            token_type="batch" if settings.token_type in ("batch", "default-batch") else "service",
            entity_id=entity_id(mount, alias),
            mount=mount,
            role_name=verified.role_name,
            issued_at=self.clock.now(),
        )
        return self.issuer.issue(spec)

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
        role = self._check_renewal(record)
        lease = compute_lease(
            role.token, default_ttl=self.settings.default_ttl, max_ttl=self.settings.max_ttl
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
        role = self._load_role(role_name.lower())
        if role is None:
            raise PermissionDeniedError("failed to renew entry: role entry not found")
        try:
            entity = parse_iam_arn(canonical_arn)
        except ArnError as exc:
            raise PermissionDeniedError(f"failed to renew entry: {exc}") from None
        client_user_id = internal.get("client_user_id", "")
        bound = check_binding(
            role,
            entity,
            client_user_id,
            lambda: self._full_arn(entity, client_user_id, role_name, "updating login"),
        )
        if not bound or role.auth_type != "iam":
            raise PermissionDeniedError(
                f'failed to renew entry: role "{role_name}" no longer bound to ARN '
                f'"{canonical_arn}"'
            )
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
        each see the other's change (the later one is recomputed), none is lost.
        """
        key = role_mod.normalize_role_name(name)
        client_config = self._client_config()
        warnings: list[str] = []

        def change(doc: Document | None) -> list[Operation]:
            existing = None if doc is None else self._role_from(key, doc.value)
            role, found = role_mod.write_role(
                existing,
                data,
                name=key,
                new_role_id=str(uuid.uuid4()),
                resolve_unique_id=lambda arn: self._resolve_unique_id(arn, client_config),
                system_max_ttl=self.settings.max_ttl,
                system_default_ttl=self.settings.default_ttl,
            )
            warnings[:] = found
            return [Put(f"role/{key}", role_mod.role_to_storage(role))]

        ops.update(self.storage, f"role/{key}", change)
        return warnings + unrecognized_warning(data, role_mod.ROLE_FIELDS)

    def _resolve_unique_id(self, arn: str, client_config: cfg.ClientConfig) -> str:
        try:
            entity = parse_iam_arn(arn)
        except ArnError as exc:
            raise InvalidRequestError(str(exc)) from None
        return self.iam.unique_id(entity, self._aws_access(entity.account_id, client_config))

    def read_role(self, name: str) -> dict[str, Any]:
        """``role/<name>`` in Vault's read shape; :class:`NotFoundError` if absent."""
        role = self._load_role(role_mod.normalize_role_name(name))
        if role is None:
            raise NotFoundError("")
        return role_mod.role_read_data(role)

    def delete_role(self, name: str) -> None:
        """Delete ``role/<name>`` (no error if absent)."""
        ops.delete(self.storage, f"role/{role_mod.normalize_role_name(name)}")

    def list_roles(self) -> Response:
        """Role names, as Vault's LIST answers them."""
        return _list_response(self.storage.list("role/"))

    def _load_role(self, key: str) -> Role | None:
        doc = self.storage.read(f"role/{key}")
        return None if doc is None else self._role_from(key, doc.value, doc.version)

    def _role_from(self, key: str, value: Mapping[str, Any], version: int | None = None) -> Role:
        role = role_mod.role_from_storage(key, dict(value))
        if version is not None and value.get("version", 0) != role.version:
            # Persist Vault's storage upgrade once, so the new role_id sticks; if another
            # writer got there first, its document wins.
            with contextlib.suppress(ConflictError):
                self.storage.commit(
                    [Put(f"role/{key}", role_mod.role_to_storage(role), expect=version)]
                )
        return role

    # ----------------------------------------------------------------- config

    def _client_config(self) -> cfg.ClientConfig:
        doc = ops.get(self.storage, "config/client")
        return cfg.ClientConfig() if doc is None else cfg.client_config_from_storage(doc)

    def _identity_config(self) -> cfg.IdentityConfig:
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
        return cfg.identity_config_read_data(self._identity_config())

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
        return _list_response(self.storage.list("config/sts/"))

    def _sts_config(self, account_id: str) -> cfg.StsRoleConfig | None:
        if not re.fullmatch(r"[0-9]{12}", account_id, re.ASCII):
            return None
        doc = ops.get(self.storage, f"config/sts/{account_id}")
        return None if doc is None else cfg.sts_config_from_storage(account_id, doc)

    def _aws_access(
        self, account_id: str, client_config: cfg.ClientConfig | None = None
    ) -> AwsAccess:
        client = client_config or self._client_config()
        sts = self._sts_config(account_id)
        return AwsAccess(
            access_key=client.access_key,
            secret_key=client.secret_key,
            iam_endpoint=client.iam_endpoint,
            sts_endpoint=client.sts_endpoint,
            sts_region=client.sts_region,
            sts_role=sts.sts_role if sts else None,
            external_id=(sts.external_id or None) if sts else None,
            max_retries=client.max_retries,
        )


def _status(operation: str, response: Response) -> int:
    """The status Vault's HTTP API answers ``response`` with."""
    if operation == "list" and not (response.data or {}).get("keys"):
        return 404
    if response.data is None and response.auth is None and not response.warnings:
        return 204
    return 200


def _list_response(keys: list[str]) -> Response:
    return Response(data={"keys": keys})


def auth_data(record: TokenRecord) -> dict[str, Any]:
    """Vault's ``auth`` object for a login or renewal response."""
    return {
        "client_token": record.client_token or "",
        "accessor": record.accessor,
        "policies": list(record.policies),
        "token_policies": list(record.token_policies),
        "identity_policies": None,
        "metadata": dict(record.metadata),
        "lease_duration": record.ttl,
        "renewable": record.renewable,
        "entity_id": record.entity_id,
        "token_type": record.token_type,
        "orphan": True,
        "mfa_requirement": None,
        "num_uses": record.num_uses,
    }


__all__ = ["Backend", "BackendSettings", "Request", "Response", "auth_data"]
