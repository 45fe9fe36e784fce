"""The ``aws-iam-backend`` command: ``server`` (dev or production), ``login`` and
``token lookup|renew|revoke|create`` (:mod:`aws_iam_backend.cli_client`),
``storage migrate|reseal``, ``seal generate`` and ``demo`` (:mod:`aws_iam_backend.demo`).

Exit codes: 0 success, 1 runtime failure (config, storage, port, login refused),
2 bad flags. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from typing import Any

import attrs

from aws_iam_backend import cli_client
from aws_iam_backend.demo.command import add_demo_parser, run_demo
from aws_iam_backend.drivers.audit import JsonLinesAuditSink
from aws_iam_backend.drivers.shapes import BackendSettings
from aws_iam_backend.errors import BackendError
from aws_iam_backend.io.seal import generate_key
from aws_iam_backend.server._async.api import AsyncVaultAPI
from aws_iam_backend.server.asgi import ASGIApp, make_asgi_app
from aws_iam_backend.server.config import (
    LOG_LEVELS,
    ConfigError,
    ServerConfig,
    load_config,
    parse_listen,
)
from aws_iam_backend.server.logs import LOG_FORMATS, configure_logging
from aws_iam_backend.server.metrics import server_metrics
from aws_iam_backend.server.serve import ServeError, bind, check_tls, serve, serve_workers
from aws_iam_backend.server.state import (
    StateError,
    migrate_storage,
    open_async_state,
    open_seal,
    open_state,
    reseal_storage,
)
from aws_iam_backend.server.tidy import tidy_forever

DEV_LISTEN = "127.0.0.1:8200"
EXAMPLES = """\
examples:
  aws-iam-backend server --dev --dev-root-token-id root
  export VAULT_ADDR=http://127.0.0.1:8200
  aws-iam-backend login -role=dev      # the token goes to ~/.vault-token
  aws-iam-backend token lookup
  VAULT_TOKEN=root aws-iam-backend token create -policy=dev -ttl=1h -field=token

'aws-iam-backend COMMAND --help' shows a command's flags and examples.
"""


def _version() -> str:
    try:
        return f"aws-iam-backend {importlib.metadata.version('aws_iam_backend')}"
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "aws-iam-backend (version unknown: not installed)"


class CommandError(Exception):
    """A failure to report as ``error: <message>`` with exit code 1."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aws-iam-backend",
        description="Vault's AWS auth method (IAM and EC2 logins) as a server.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-version", "--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    server = commands.add_parser("server", help="run the server (--dev, or --config FILE)")
    server.add_argument("--dev", action="store_true", help="development mode, like vault -dev")
    server.add_argument("--config", metavar="FILE", help="TOML configuration file")
    server.add_argument("--dev-root-token-id", metavar="ID", help="dev mode root token")
    server.add_argument("--listen", metavar="HOST:PORT", help=f"dev mode (default {DEV_LISTEN})")
    server.add_argument("--storage", metavar="URL", help="dev mode: memory:// or sqlite:///path")
    server.add_argument("--audit-file", metavar="PATH", help="dev mode: JSON-lines audit log")
    server.add_argument("--log-level", choices=LOG_LEVELS, help="dev mode (default info)")
    server.add_argument("--log-format", choices=LOG_FORMATS, help="dev mode (default standard)")
    cli_client.add_commands(commands)  # login, token
    storage = commands.add_parser("storage", help="copy or re-encrypt the server's storage")
    storage_commands = storage.add_subparsers(dest="storage_command", required=True)
    migrate = storage_commands.add_parser(
        "migrate", help="copy every document into an empty store (servers stopped)"
    )
    migrate.add_argument("--from", dest="source", required=True, metavar="URL")
    migrate.add_argument("--to", dest="target", required=True, metavar="URL")
    keys = migrate.add_mutually_exclusive_group()
    keys.add_argument("--seal-key-file", metavar="FILE", help="read and write sealed")
    keys.add_argument("--seal-key-env", metavar="VAR", help="the seal keys in a variable")
    reseal = storage_commands.add_parser(
        "reseal", help="re-encrypt every document under the active seal key"
    )
    reseal.add_argument("--config", required=True, metavar="FILE", help="server TOML file")
    seal = commands.add_parser("seal", help="seal keys")
    seal_commands = seal.add_subparsers(dest="seal_command", required=True)
    seal_commands.add_parser("generate", help="print a new random seal key (base64)")
    add_demo_parser(commands)
    return parser


def _server_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServerConfig:
    dev_only = [
        flag
        for flag, value in (
            ("--dev-root-token-id", args.dev_root_token_id),
            ("--listen", args.listen),
            ("--storage", args.storage),
            ("--audit-file", args.audit_file),
            ("--log-level", args.log_level),
            ("--log-format", args.log_format),
        )
        if value is not None
    ]
    if args.dev and args.config:
        parser.error("server: use either --dev or --config FILE, not both")
    if not args.dev:
        if dev_only:
            parser.error(f"server: {dev_only[0]} is only allowed with --dev")
        if not args.config:
            parser.error("server: needs --dev or --config FILE")
        try:
            return load_config(args.config)
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
    if args.dev_root_token_id is not None and not args.dev_root_token_id.strip():
        parser.error("server: --dev-root-token-id must not be empty")
    try:
        host, port = parse_listen(args.listen or DEV_LISTEN)
    except ValueError as exc:
        parser.error(f"server: --listen: {exc}")
    return ServerConfig(
        host=host,
        port=port,
        root_token=args.dev_root_token_id or "hvs." + secrets.token_urlsafe(18),
        storage_url=args.storage or "memory://",
        audit_file=args.audit_file,
        log_level=args.log_level or "info",
        log_format=args.log_format or "standard",
    )


def _dev_banner(config: ServerConfig, persistent: bool) -> str:
    host = f"[{config.host}]" if ":" in config.host else config.host
    address = f"http://{host}:{config.port}"
    storage = "persistent (--storage)" if persistent else "in memory: lost on exit"
    return f"""\
==> aws-iam-backend dev server started. Do NOT run dev mode in production.

    Address:    {address}
    Root Token: {config.root_token}
    Mounted:    aws/ (AWS auth method: IAM and EC2 logins)
    Storage:    {storage}

    export VAULT_ADDR='{address}'
    export VAULT_TOKEN='{config.root_token}'

Example with hvac:

    import boto3, hvac
    client = hvac.Client(url="{address}", token="{config.root_token}")
    client.auth.aws.create_role(
        "dev", auth_type="iam", policies=["dev"], resolve_aws_unique_ids=False,
        bound_iam_principal_arn=["arn:aws:iam::123456789012:role/dev"])
    creds = boto3.Session().get_credentials().get_frozen_credentials()
    login = hvac.Client(url="{address}").auth.aws.iam_login(
        creds.access_key, creds.secret_key, creds.token, role="dev")
    print(login["auth"]["client_token"])
"""


def _check_state(config: ServerConfig) -> None:
    """Open the stores synchronously once before serving: this migrates them and turns any
    problem into one line here, before the port is bound. Serving processes then open
    their own async connections (:func:`_build_app`)."""
    try:
        open_state(config, os.environ).close()
    except StateError as exc:
        raise CommandError(str(exc)) from None
    except BackendError as exc:
        raise CommandError(f"storage: {exc.message}") from None
    sink = _audit_sink(config)  # can it be opened?
    if sink is not None:
        sink.close()


def _audit_sink(config: ServerConfig) -> JsonLinesAuditSink | None:
    try:
        return JsonLinesAuditSink(config.audit_file) if config.audit_file else None
    except OSError as exc:
        raise CommandError(f"audit: cannot open {config.audit_file}: {exc.strerror}") from None


def _build_app(config: ServerConfig, *, dev: bool) -> ASGIApp:
    """The ASGI app of one serving process: its async stores, audit sink and tidy task."""
    audit = _audit_sink(config)
    state = open_async_state(config, os.environ)
    settings = attrs.evolve(
        BackendSettings(),
        default_ttl=config.default_ttl,
        max_ttl=config.max_ttl,
        audit_required=config.audit_required,
        rate_limits=config.rate_limits,
        sts_timeout=config.sts_timeout,
        challenge_ttl=config.challenge_ttl,
    )
    api = AsyncVaultAPI(
        storage=state.storage,
        root_token=config.root_token,
        settings=settings,
        trusted_proxies=config.trusted_proxies,
        audit=audit,
        cache=state.cache,
        metrics=server_metrics(),
        unauthenticated_metrics_access=config.unauthenticated_metrics_access,
    )
    tasks: list[asyncio.Task[None]] = []

    async def started() -> None:
        if dev:
            await api.mounts.ensure("aws/")
        tasks.append(asyncio.create_task(tidy_forever(api)))

    async def stopping() -> None:
        for task in tasks:
            task.cancel()
        await state.aclose()
        if audit is not None:
            audit.close()

    return make_asgi_app(
        api, request_timeout=config.request_timeout, on_startup=started, on_shutdown=stopping
    )


def _run_server(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    config = _server_config(args, parser)
    configure_logging(config.log_level, config.log_format)
    if config.tls_cert_file and config.tls_key_file:
        check_tls(config.tls_cert_file, config.tls_key_file)
    _check_state(config)
    sock = bind(config.host, config.port)
    if args.dev:
        persistent = not config.storage_url.startswith("memory:")
        print(_dev_banner(config, persistent=persistent), flush=True)
    else:
        logging.getLogger("aws_iam_backend").info(
            "listening on %s:%d (%s, %d worker%s)",
            config.host,
            config.port,
            "TLS" if config.tls_cert_file else "plain HTTP",
            config.workers,
            "" if config.workers == 1 else "s",
        )
    listener: dict[str, Any] = {
        "log_level": config.log_level,
        "log_format": config.log_format,
        "tls_cert_file": config.tls_cert_file,
        "tls_key_file": config.tls_key_file,
        "header_read_timeout": config.header_read_timeout,
        "idle_timeout": config.idle_timeout,
        "max_connections": config.max_connections,
    }
    if config.workers > 1:
        # Each worker builds its own app (and opens its own connections) after the fork.
        return serve_workers(
            lambda: _build_app(config, dev=False), sock, config.workers, **listener
        )
    serve(_build_app(config, dev=args.dev), sock, **listener)
    return 0


def _run_storage(args: argparse.Namespace) -> int:
    try:
        if args.storage_command == "migrate":
            seal = None
            if args.seal_key_file or args.seal_key_env:
                seal = open_seal(
                    attrs.evolve(
                        _NO_CONFIG,
                        seal_key_file=args.seal_key_file,
                        seal_key_env=args.seal_key_env,
                    ),
                    os.environ,
                )
            count = migrate_storage(args.source, args.target, seal)
            print(f"copied {count} documents")
            return 0
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        count = reseal_storage(config, os.environ)
    except StateError as exc:
        raise CommandError(str(exc)) from None
    print(f"resealed {count} documents")
    return 0


_NO_CONFIG = ServerConfig(host="127.0.0.1", port=8200, root_token="unused")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "server":
            return _run_server(args, parser)
        if args.command == "storage":
            return _run_storage(args)
        if args.command == "demo":
            return run_demo(args)
        if args.command == "seal":
            print(generate_key())
            return 0
        return cli_client.run(args)  # login, token
    except (CommandError, ServeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
