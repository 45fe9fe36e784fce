"""The client commands of ``aws-iam-backend``: ``login`` (``vault login -method=aws``) and
``token lookup|renew|revoke|create`` (``vault token ...``).

Flags are Vault's, spelled with one dash or two (``-format=json``, ``--format json``);
boolean flags also take ``=true``/``=false``. The environment is Vault's: ``VAULT_ADDR``,
``VAULT_TOKEN`` (else ``~/.vault-token``, which ``login`` writes), ``VAULT_CACERT``,
``VAULT_SKIP_VERIFY``, ``VAULT_CLIENT_TIMEOUT`` and ``VAULT_FORMAT``; a flag wins over its
variable. Failures are one line on stderr with exit code 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import botocore.session

from aws_iam_backend.cli_output import print_secret
from aws_iam_backend.client import DEFAULT_TIMEOUT, VaultClient, VaultError, login_response

DEFAULT_ADDRESS = "https://127.0.0.1:8200"
"""Vault's default address."""
TOKEN_FILE = ".vault-token"
"""The token file in the home directory (Vault's built-in token helper)."""
FORMATS = ("table", "json")

Command = Callable[[argparse.Namespace, argparse.ArgumentParser], int]

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_LOGIN_KEYS = {"role": "role", "header_value": "server_id", "region": "region", "mount": "mount"}
_CREDENTIAL_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_security_token")
"""Vault's credential parameters: not taken here, and their values never echoed."""


class CommandFailed(Exception):
    """A failure reported as its one-line message, with exit code 1."""


def run(args: argparse.Namespace) -> int:
    """Run a parsed ``login`` or ``token ...`` command; returns the exit code."""
    command: Command = args.run
    try:
        return command(args, args.usage)
    except CommandFailed as exc:
        print(exc, file=sys.stderr)
        return 1


# ------------------------------------------------------------------------ parsing


def parse_bool(text: str) -> bool | None:
    """Go's ``strconv.ParseBool``; None when ``text`` is not a boolean."""
    return True if text in _TRUE else False if text in _FALSE else None


def parse_timeout(text: str) -> float:
    """Positive seconds from ``30``, ``2.5``, ``90s``, ``1m30s`` or ``500ms``."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(number + unit for number, unit in parts) != text:
            raise ValueError(f"invalid duration {text!r}") from None
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"invalid duration {text!r}: must be positive")
    return seconds


def _timeout_arg(text: str) -> float:
    try:
        return parse_timeout(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _flag(group: argparse._ActionsContainer, name: str, **kwargs: Any) -> None:
    """``-name`` and ``--name``."""
    group.add_argument(f"-{name}", f"--{name}", **kwargs)


def _bool_flag(
    group: argparse._ActionsContainer, name: str, help: str, default: bool | None = False
) -> None:
    """A Go boolean flag: ``-name``, or ``-name=true``/``-name=false`` (any dash count)."""
    dest = name.replace("-", "_")
    group.add_argument(
        f"-{name}", f"--{name}", dest=dest, action="store_const", const=True, default=default,
        help=help,
    )  # fmt: skip
    for value, words in ((True, _TRUE), (False, _FALSE)):
        spellings = [f"{dashes}{name}={word}" for dashes in ("-", "--") for word in words]
        group.add_argument(
            *spellings, dest=dest, action="store_const", const=value, default=default,
            help=argparse.SUPPRESS,
        )  # fmt: skip


def _connection_flags() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("connection (a flag wins over its variable)")
    _flag(
        group, "address", metavar="URL",
        help=f"server address (default: $VAULT_ADDR, else {DEFAULT_ADDRESS})",
    )  # fmt: skip
    _flag(
        group, "ca-cert", metavar="FILE",
        help="PEM CA bundle to verify the server's certificate (default: $VAULT_CACERT)",
    )  # fmt: skip
    _bool_flag(
        group, "tls-skip-verify", default=None,
        help="do not verify the server's TLS certificate: insecure (default: $VAULT_SKIP_VERIFY)",
    )  # fmt: skip
    _flag(
        group, "timeout", metavar="DURATION", type=_timeout_arg,
        help="how long to wait for the server: seconds, or like 90s, 1m (default: "
        f"$VAULT_CLIENT_TIMEOUT, else {DEFAULT_TIMEOUT:g}s); connecting gets at most 10s",
    )  # fmt: skip
    return parser


def _output_flags() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("output")
    _flag(
        group, "format", choices=FORMATS,
        help="table (default, or $VAULT_FORMAT), or json: the whole response",
    )  # fmt: skip
    _flag(
        group, "field", metavar="NAME",
        help="print only this field, raw (token, token_accessor, policies, a data key...)",
    )  # fmt: skip
    return parser


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    epilog: str,
    run: Command,
    parents: list[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name, help=summary, description=summary[0].upper() + summary[1:] + ".", epilog=epilog,
        parents=parents, formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )  # fmt: skip
    parser.set_defaults(run=run, usage=parser)
    return parser


LOGIN_EXAMPLES = """\
examples:
  # log in with the AWS credentials botocore finds; the token goes to ~/.vault-token
  export VAULT_ADDR=https://vault.example.com:8200
  aws-iam-backend login -role=ci

  # Vault's spelling works too (flags first, then KEY=VALUE)
  aws-iam-backend login -method=aws role=ci header_value=vault.example.com

  # only the token, not stored: for scripts
  export VAULT_TOKEN="$(aws-iam-backend login --role ci -field=token -no-store)"

  # the whole response as JSON; mount auth/team; a private CA; fail after 5 s
  aws-iam-backend login -path=team -role=deploy -format=json -ca-cert=ca.pem -timeout=5
"""

TOKEN_EXAMPLES = """\
The current token is $VAULT_TOKEN, else the one `login` stored in ~/.vault-token.

examples:
  aws-iam-backend token lookup
  aws-iam-backend token lookup -format=json hvs.CAESI...
  aws-iam-backend token renew -increment=1h
  aws-iam-backend token revoke -accessor 2c84f488-...
  aws-iam-backend token create -policy=dev -ttl=1h -field=token
"""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``login`` and ``token`` to the top-level subcommands."""
    connection, output = _connection_flags(), _output_flags()
    both = [connection, output]
    login = _command(
        commands, "login", "log in with AWS credentials (vault login -method=aws)",
        LOGIN_EXAMPLES, _login, both,
    )  # fmt: skip
    _flag(login, "method", choices=("aws",), default="aws", help="auth method (only aws)")
    login.add_argument(
        "-path", "--path", "-mount", "--mount", dest="mount", default="aws", metavar="MOUNT",
        help="auth mount path (default: aws)",
    )  # fmt: skip
    _flag(login, "role", help="role name (default: the principal's friendly name)")
    _flag(login, "header-value", metavar="VALUE", help="sign X-Vault-AWS-IAM-Server-ID: VALUE")
    _flag(login, "region", help="STS region to sign for (default: the session's, us-east-1)")
    _bool_flag(
        login, "challenge",
        "sign a nonce from auth/MOUNT/challenge first (aws-iam-backend servers only)",
    )  # fmt: skip
    _bool_flag(login, "no-store", f"do not write the token to ~/{TOKEN_FILE}")
    login.add_argument(
        "params", nargs="*", metavar="KEY=VALUE",
        help="Vault's login parameters: role=, header_value=, region=, mount=",
    )  # fmt: skip

    token = commands.add_parser(
        "token", help="look up, renew, revoke or create tokens (vault token ...)",
        description="Token commands.", epilog=TOKEN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    tokens = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    lookup = _command(
        tokens, "lookup", "show a token's properties (vault token lookup)",
        "examples:\n  aws-iam-backend token lookup\n"
        "  aws-iam-backend token lookup -field=policies hvs.CAESI...\n"
        "  aws-iam-backend token lookup -accessor -format=json 2c84f488-...\n",
        _lookup, both,
    )  # fmt: skip
    _bool_flag(lookup, "accessor", "TOKEN is an accessor (auth/token/lookup-accessor)")
    lookup.add_argument("token", nargs="?", metavar="TOKEN", help="default: the current token")

    renew = _command(
        tokens, "renew", "renew a token's lease (vault token renew)",
        "examples:\n  aws-iam-backend token renew\n"
        "  aws-iam-backend token renew -increment=30m hvs.CAESI...\n\n"
        "A TOKEN given renews itself (auth/token/renew-self with it).\n",
        _renew, both,
    )  # fmt: skip
    _flag(renew, "increment", metavar="DURATION", help="lease to ask for, e.g. 1h or 3600")
    renew.add_argument("token", nargs="?", metavar="TOKEN", help="default: the current token")

    revoke = _command(
        tokens, "revoke", "revoke a token and its children (vault token revoke)",
        "examples:\n  aws-iam-backend token revoke hvs.CAESI...\n"
        "  aws-iam-backend token revoke -self\n"
        "  aws-iam-backend token revoke -accessor 2c84f488-...\n\n"
        "A TOKEN given revokes itself (auth/token/revoke-self with it).\n",
        _revoke, [connection],
    )  # fmt: skip
    _bool_flag(revoke, "self", "revoke the current token")
    _bool_flag(revoke, "accessor", "TOKEN is an accessor (auth/token/revoke-accessor)")
    revoke.add_argument("token", nargs="?", metavar="TOKEN")

    create = _command(
        tokens, "create", "create a token (vault token create; root token only here)",
        "examples:\n  aws-iam-backend token create -policy=dev -ttl=1h\n"
        "  aws-iam-backend token create -policy=a -policy=b -period=24h -orphan "
        "-metadata=team=ci -field=token\n",
        _create, both,
    )  # fmt: skip
    _flag(create, "policy", action="append", default=[], metavar="NAME", help="a policy (repeat)")
    _flag(create, "ttl", metavar="DURATION", help="initial TTL, e.g. 1h")
    _flag(create, "explicit-max-ttl", metavar="DURATION", help="hard limit on the TTL")
    _flag(create, "period", metavar="DURATION", help="make a periodic token")
    _flag(create, "use-limit", type=int, default=0, metavar="N", help="number of uses")
    _flag(create, "display-name", metavar="NAME")
    _flag(create, "metadata", action="append", default=[], metavar="KEY=VALUE", help="(repeat)")
    _flag(create, "type", choices=("service", "batch"), help="token type (default: service)")
    _flag(create, "id", metavar="ID", help="the token's value (default: random)")
    _bool_flag(create, "orphan", "create it without a parent")
    _bool_flag(create, "renewable", "renewable (default); -renewable=false if not", True)
    _bool_flag(create, "no-default-policy", "leave out the default policy")


# ----------------------------------------------------------------- environment


def _client(args: argparse.Namespace, token: str | None) -> VaultClient:
    """A client for the address, CA, TLS and timeout settings (flag, else environment)."""
    skip_verify = args.tls_skip_verify
    if skip_verify is None:
        text = os.environ.get("VAULT_SKIP_VERIFY", "")
        skip_verify = parse_bool(text) if text else False
        if skip_verify is None:
            raise VaultError(f"could not parse VAULT_SKIP_VERIFY={text!r} as a boolean")
    timeout = args.timeout
    if timeout is None:
        text = os.environ.get("VAULT_CLIENT_TIMEOUT", "")
        try:
            timeout = parse_timeout(text) if text else DEFAULT_TIMEOUT
        except ValueError as exc:
            raise VaultError(f"VAULT_CLIENT_TIMEOUT: {exc}") from None
    return VaultClient(
        args.address or os.environ.get("VAULT_ADDR") or DEFAULT_ADDRESS,
        token,
        ca_cert=args.ca_cert or os.environ.get("VAULT_CACERT") or None,
        skip_verify=skip_verify,
        timeout=timeout,
    )


def _format(args: argparse.Namespace) -> str:
    chosen = str(args.format or os.environ.get("VAULT_FORMAT") or "table").lower()
    if chosen not in FORMATS:
        raise CommandFailed(f"Invalid output format {chosen!r} (VAULT_FORMAT): use table or json")
    return chosen


def token_path() -> Path:
    """``~/.vault-token``."""
    try:
        return Path.home() / TOKEN_FILE
    except RuntimeError as exc:  # no HOME and no passwd entry
        raise CommandFailed(f"cannot find ~/{TOKEN_FILE}: {exc}") from None


def caller_token() -> str | None:
    """``VAULT_TOKEN``, else the token in ``~/.vault-token``, else None."""
    token = os.environ.get("VAULT_TOKEN", "").strip()
    if token:
        return token
    path = token_path()
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise CommandFailed(f"Error reading {path}: {reason}") from None


def store_token(token: str) -> Path:
    """Write ``token`` to ``~/.vault-token`` atomically, readable by its owner only from
    the first byte (a private temporary file, then renamed over it)."""
    path = token_path()
    descriptor, temporary = tempfile.mkstemp(prefix=f"{TOKEN_FILE}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(token)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


@contextlib.contextmanager
def _failing(prefix: str, *also: type[Exception]) -> Iterator[None]:
    """Turn a failed request (and ``also``) into ``prefix: <reason>``."""
    caught: tuple[type[Exception], ...] = (VaultError, *also)
    try:
        yield
    except caught as exc:
        raise CommandFailed(f"{prefix}: {exc}") from None


# -------------------------------------------------------------------- commands


def _warn(text: str) -> None:
    print(text, file=sys.stderr)


def _login(args: argparse.Namespace, usage: argparse.ArgumentParser) -> int:
    params: dict[str, str | None] = {
        "role": args.role,
        "server_id": args.header_value,
        "region": args.region,
        "mount": args.mount,
    }
    for item in args.params:
        key, equals, value = item.partition("=")
        if key in _CREDENTIAL_KEYS:
            usage.error(
                f"{key}= is not supported: the AWS credentials come from botocore "
                "(AWS_* variables, ~/.aws files, an instance or task role)"
            )
        if not equals or key not in _LOGIN_KEYS:
            usage.error(f"expected role=, header_value=, region= or mount=, got {item!r}")
        params[_LOGIN_KEYS[key]] = value
    output_format = _format(args)
    with _failing(
        "Error authenticating",
        ValueError,
        TypeError,
        botocore.exceptions.BotoCoreError,
        botocore.exceptions.ClientError,
    ):
        client = _client(args, token=None)
        secret = login_response(
            client.write,
            botocore.session.Session(),
            mount=params.pop("mount") or "aws",
            challenge=args.challenge,
            **params,
        )
    auth = secret.get("auth")
    token = auth.get("client_token") if isinstance(auth, dict) else None
    if not isinstance(token, str) or not token:
        raise CommandFailed("Error authenticating: the response has no auth.client_token")
    if args.no_store:
        _warn(f"The token was not stored in ~/{TOKEN_FILE}: set VAULT_TOKEN to use it.")
    else:
        try:
            store_token(token)
        except OSError as exc:
            raise CommandFailed(f"Error storing token: {exc.strerror or exc}") from None
        if os.environ.get("VAULT_TOKEN", "").strip():
            _warn(
                "WARNING! The VAULT_TOKEN environment variable is set! It takes precedence "
                f"over ~/{TOKEN_FILE}; unset it or update it to use the new token."
            )
    if not args.field and output_format == "table":
        if args.no_store:
            print("Success! You are now authenticated.\n")
        else:
            print(
                "Success! You are now authenticated. The token information displayed below\n"
                f"is already stored in ~/{TOKEN_FILE}. You do NOT need to run\n"
                '"aws-iam-backend login" again. Future requests will automatically use\n'
                "this token.\n"
            )
    return print_secret(secret, output_format, args.field)


def _lookup(args: argparse.Namespace, usage: argparse.ArgumentParser) -> int:
    if args.accessor and not args.token:
        usage.error("-accessor needs an ACCESSOR argument")
    output_format = _format(args)
    with _failing("Error looking up token"):
        client = _client(args, caller_token())
        if args.accessor:
            secret = client.request("POST", "auth/token/lookup-accessor", {"accessor": args.token})
        elif args.token:
            secret = client.request("POST", "auth/token/lookup", {"token": args.token})
        else:
            secret = client.request("GET", "auth/token/lookup-self")
    return print_secret(secret or {}, output_format, args.field)


def _renew(args: argparse.Namespace, _usage: argparse.ArgumentParser) -> int:
    output_format = _format(args)
    with _failing("Error renewing token"):
        client = _client(args, args.token or caller_token())
        body = {"increment": args.increment} if args.increment else {}
        secret = client.request("PUT", "auth/token/renew-self", body)
    return print_secret(secret or {}, output_format, args.field)


def _revoke(args: argparse.Namespace, usage: argparse.ArgumentParser) -> int:
    if args.self and (args.token or args.accessor):
        usage.error("-self takes no TOKEN and no -accessor")
    if not args.self and not args.token:
        usage.error("needs a TOKEN (an ACCESSOR with -accessor), or -self")
    with _failing("Error revoking token"):
        if args.accessor:
            client = _client(args, caller_token())
            client.request("POST", "auth/token/revoke-accessor", {"accessor": args.token})
        else:
            client = _client(args, args.token or caller_token())
            client.request("PUT", "auth/token/revoke-self")
    print("Success! Revoked token (if it existed)")
    return 0


def _create(args: argparse.Namespace, usage: argparse.ArgumentParser) -> int:
    metadata: dict[str, str] = {}
    for item in args.metadata:
        key, equals, value = item.partition("=")
        if not equals or not key:
            usage.error(f"-metadata: expected KEY=VALUE, got {item!r}")
        metadata[key] = value
    output_format = _format(args)
    body: dict[str, Any] = {"renewable": args.renewable}
    optional = {
        "id": args.id,
        "policies": args.policy,
        "meta": metadata,
        "ttl": args.ttl,
        "explicit_max_ttl": args.explicit_max_ttl,
        "period": args.period,
        "display_name": args.display_name,
        "num_uses": args.use_limit,
        "type": args.type,
        "no_parent": args.orphan,
        "no_default_policy": args.no_default_policy,
    }
    body.update({key: value for key, value in optional.items() if value})
    with _failing("Error creating token"):
        secret = _client(args, caller_token()).request("POST", "auth/token/create", body)
    return print_secret(secret or {}, output_format, args.field)
