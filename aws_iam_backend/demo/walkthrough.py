"""``aws-iam-backend demo``: one IAM login end to end, and two refused, with no AWS account.

Starts the AWS emulator (moto, checking signatures) and a dev server on loopback, points the
server's ``config/client`` at the emulator (STS through a tap that keeps a copy of each
exchange), creates an IAM role, signs a login with its credentials as a workload would, and
prints each of the five steps with its real data. Secrets are never printed whole.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import IO, Any, TextIO

import attrs
import defusedxml.ElementTree as SafeXml
from botocore.credentials import Credentials

from aws_iam_backend.client import build_login_payload
from aws_iam_backend.demo.emulator import (
    Emulator,
    EmulatorError,
    Keys,
    free_port,
    stop_process,
    wait_for_http,
)
from aws_iam_backend.demo.tap import Exchange, StsTap
from aws_iam_backend.login.arn import parse_iam_arn

SERVER_ID = "vault.example.com"
ROLE = "ci"
IAM_ROLE = "ci-runner"
OTHER_IAM_ROLE = "deploy-bot"
_STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
_INDENT = "     "


class DemoError(Exception):
    """Something in the demo did not go as it should; the message says what."""


@attrs.frozen
class Answer:
    """An HTTP answer from the server: status and JSON body."""

    status: int
    body: dict[str, Any]

    @property
    def error(self) -> str:
        """The server's error text(s), joined."""
        return "; ".join(str(e) for e in self.body.get("errors") or [])


def clean_env() -> dict[str, str]:
    """This process's environment without AWS credentials, profiles or endpoints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


class DevServer:
    """``aws-iam-backend server --dev`` on a free loopback port, its output kept aside."""

    def __init__(self) -> None:
        self.root_token = "hvs." + secrets.token_urlsafe(18)
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "aws_iam_backend", "server", "--dev"]
        command += ["--dev-root-token-id", self.root_token, "--listen", f"127.0.0.1:{self.port}"]
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, our arguments
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=clean_env(),
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until ``sys/health`` answers; :class:`DemoError` if the server exits first."""
        if not wait_for_http(self.address + "/v1/sys/health", self.process, timeout):
            if self.process.poll() is not None:
                raise DemoError(f"the dev server exited:\n{self.output()}")
            raise DemoError(f"the dev server did not answer within {timeout:.0f}s")

    def call(self, method: str, path: str, body: object = None, *, root: bool = True) -> Answer:
        """One request to ``/v1/<path>`` (with the root token unless ``root`` is false)."""
        return http_call(self.address, method, path, body, self.root_token if root else None)

    def output(self) -> str:
        """What the server printed so far (its last 2000 characters)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        """Terminate the server and reap it."""
        stop_process(self.process)
        self._log.close()


def http_call(address: str, method: str, path: str, body: object, token: str | None) -> Answer:
    """One JSON request to a server speaking Vault's API; errors are answers too."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Vault-Token"] = token
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - the address is ours (loopback)
        f"{address}/v1/{path}", data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    document = json.loads(raw) if raw.strip() else {}
    return Answer(status, document if isinstance(document, dict) else {})


def truncated(secret: str, keep: int = 12) -> str:
    """The first ``keep`` characters of a secret, and how long it is."""
    return f"{secret[:keep]}... ({len(secret)} chars, truncated)"


def sts_answer(exchange: Exchange) -> dict[str, str]:
    """GetCallerIdentity's result fields, or an error's Code and Message."""
    root = SafeXml.fromstring(exchange.answer)
    result = root.find(f"{_STS_NS}GetCallerIdentityResult")
    if result is None:  # an error document, namespaced or not
        fields = {el.tag.rpartition("}")[2]: (el.text or "") for el in root.iter()}
        return {k: fields[k] for k in ("Code", "Message") if k in fields}
    return {el.tag.rpartition("}")[2]: (el.text or "") for el in result}


class _Printer:
    def __init__(self, out: TextIO, color: bool) -> None:
        self.out = out
        self.color = color

    def _style(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def title(self, text: str) -> None:
        self.line()
        self.line(self._style(text, "1"))

    def note(self, text: str) -> None:
        self.line(f"   {text}")

    def field(self, name: str, value: str, width: int = 8) -> None:
        """``name value``, the value wrapped under itself past 100 columns."""
        lead = f"{_INDENT}{name:<{width}} "
        lines = textwrap.wrap(value, 100 - len(lead), break_on_hyphens=False) or [""]
        self.line(lead + lines[0])
        for rest in lines[1:]:
            self.line(" " * len(lead) + rest)

    def good(self, text: str) -> str:
        return self._style(text, "32")

    def bad(self, text: str) -> str:
        return self._style(text, "31")


def _request_lines(payload: dict[str, Any]) -> Iterator[str]:
    """The signed request in a payload, secrets truncated."""
    url = base64.b64decode(payload["iam_request_url"]).decode()
    body = base64.b64decode(payload.get("iam_request_body", "")).decode()
    headers: dict[str, list[str]] = json.loads(base64.b64decode(payload["iam_request_headers"]))
    yield f"{payload['iam_http_request_method']} {url}"
    for name, values in headers.items():
        value = values[0]
        if name == "Authorization":
            scheme, _, rest = value.partition(" ")
            parts = dict(part.strip().split("=", 1) for part in rest.split(","))
            yield f"{name}: {scheme} Credential={parts['Credential']},"
            yield f"    SignedHeaders={parts['SignedHeaders']},"
            yield f"    Signature={truncated(parts['Signature'])}"
        elif name == "X-Amz-Security-Token":
            yield f"{name}: {truncated(value)}"
        else:
            yield f"{name}: {value}"
    yield ""
    yield body


def _login_document(payload: dict[str, Any]) -> Iterator[str]:
    """The login body, one field a line, the base64 fields cut short."""
    yield "{"
    for i, (key, value) in enumerate(payload.items()):
        shown = f"{value[:24]}... ({len(value)} chars)" if key.startswith("iam_request_") else value
        yield f'  "{key}": "{shown}"' + ("," if i < len(payload) - 1 else "")
    yield "}"


class Demo:
    """The emulator, the server, the tap and the printer of one walkthrough."""

    def __init__(self, aws: Emulator, server: DevServer, tap: StsTap, printer: _Printer) -> None:
        self.aws = aws
        self.server = server
        self.tap = tap
        self.p = printer

    def setup(self) -> tuple[dict[str, Any], Keys, Keys]:
        """Configure the server and AWS; returns the server role and two workloads' keys."""
        self.expect(
            self.server.call(
                "POST",
                "auth/aws/config/client",
                {
                    "sts_endpoint": self.tap.endpoint,
                    "iam_endpoint": self.aws.endpoint,
                    "access_key": self.aws.admin.access_key,
                    "secret_key": self.aws.admin.secret_key,
                    "iam_server_id_header_value": SERVER_ID,
                },
            ),
            "write config/client",
        )
        arn = self.aws.create_role(IAM_ROLE)["Arn"]
        other_arn = self.aws.create_role(OTHER_IAM_ROLE)["Arn"]
        role = {
            "auth_type": "iam",
            "bound_iam_principal_arn": [arn],
            "token_policies": ["deploy"],
            "token_ttl": "1h",
        }
        self.expect(self.server.call("POST", f"auth/aws/role/{ROLE}", role), "write role")
        written = self.expect(self.server.call("GET", f"auth/aws/role/{ROLE}"), "read role")
        workload = self.aws.assume_role(arn, "build-42")
        other = self.aws.assume_role(other_arn, "build-43")
        p = self.p
        p.line("Set-up (all on this machine; nothing is sent to AWS):")
        p.field("AWS", f"emulator (moto) at {self.aws.endpoint}, checking signatures as STS does")
        p.field("server", f"aws-iam-backend dev server at {self.server.address}, mount aws/")
        p.field("", "config/client: sts_endpoint and iam_endpoint -> the emulator,")
        p.field("", f"iam_server_id_header_value = {SERVER_ID}")
        p.field("IAM role", f"{arn}: the workload runs as it (session build-42)")
        p.field("role", f'"{ROLE}" on the server: bound_iam_principal_arn = {arn},')
        p.field("", "token_policies = deploy, token_ttl = 1h")
        return written["data"], workload, other

    def expect(self, answer: Answer, what: str) -> dict[str, Any]:
        """The answer's body if it is a success; else :class:`DemoError`."""
        if not 200 <= answer.status < 300:
            raise DemoError(f"{what}: {answer.status} {answer.error}")
        return answer.body

    def login(self, keys: Keys, secret_key: str | None = None) -> tuple[Answer, Exchange]:
        """Sign, post, and return the server's answer and the STS exchange it made."""
        payload = self.sign(keys, secret_key)
        return self.send(payload)

    def sign(self, keys: Keys, secret_key: str | None = None) -> dict[str, Any]:
        """The login payload, signed as ``build_login_payload`` signs it."""
        creds = Credentials(keys.access_key, secret_key or keys.secret_key, keys.session_token)
        return build_login_payload(creds, role=ROLE, server_id=SERVER_ID, region="us-east-1")

    def send(self, payload: dict[str, Any]) -> tuple[Answer, Exchange]:
        """Post the payload to the server; the STS exchange it caused."""
        seen = len(self.tap.exchanges)
        answer = self.server.call("POST", "auth/aws/login", payload, root=False)
        if len(self.tap.exchanges) == seen:
            raise DemoError(f"login: the server did not ask STS ({answer.status} {answer.error})")
        return answer, self.tap.exchanges[-1]

    def walk(self, role: dict[str, Any], keys: Keys) -> None:
        """The five steps of a successful login."""
        p = self.p
        p.title("1. Sign: the workload signs sts:GetCallerIdentity with its AWS credentials")
        p.note("(botocore SigV4, as aws_iam_backend.client.build_login_payload does; not sent)")
        payload = self.sign(keys)
        for line in _request_lines(payload):
            p.line(f"{_INDENT}{line}".rstrip())
        p.note("The secret key is not in it: only a signature made with it, valid 15 minutes.")
        p.note(f"{SERVER_ID} is signed too: the request is good for this server only.")

        p.title("2. Send: the workload posts the signed request, base64-encoded, to the server")
        p.line(f"{_INDENT}POST {self.server.address}/v1/auth/aws/login")
        for line in _login_document(payload):
            p.line(f"{_INDENT}{line}")
        answer, exchange = self.send(payload)

        p.title("3. Verify: the server checks the request and forwards it to STS")
        p.note("(STS host, action, body, signed headers and server ID checked first; the")
        p.note(" signature itself only STS can check: here the emulator)")
        p.line(
            f"{_INDENT}-> {exchange.method} {self.aws.endpoint}{exchange.path}"
            f"  Host: {exchange.headers.get('Host', '?')}"
        )
        result = sts_answer(exchange)
        p.line(f"{_INDENT}<- {exchange.status} {exchange.reason}: GetCallerIdentityResult")
        for name in ("Arn", "UserId", "Account"):
            p.field(f"   {name}", result.get(name, "?"), 10)
        if exchange.status != 200 or "Arn" not in result:
            raise DemoError(f"STS refused the workload's login: {result}")

        p.title(f'4. Bind: the server maps the caller to its IAM entity and checks role "{ROLE}"')
        entity = parse_iam_arn(result["Arn"])
        unique_id = result["UserId"].partition(":")[0]
        bound_ids = role.get("bound_iam_principal_id") or []
        p.field("caller", result["Arn"], 11)
        p.field("entity", f"{entity.canonical_arn} (unique ID {unique_id})", 11)
        bound_arns = ", ".join(role["bound_iam_principal_arn"])
        p.field(f'role "{ROLE}"', f"bound_iam_principal_arn {bound_arns}", 11)
        p.field("", f"bound_iam_principal_id  {', '.join(bound_ids)} (from IAM, at write)", 11)
        match = unique_id in bound_ids
        p.line(
            f"{_INDENT}-> {p.good('match') if match else 'match'} on the unique ID: a role "
            "deleted and re-created under this name would not match"
        )

        p.title("5. Token: the server answers with a token the workload uses from now on")
        body = self.expect(answer, "login")
        auth = body["auth"]
        p.field("token", truncated(auth["client_token"], 8), 10)
        p.field("policies", ", ".join(auth["policies"]), 10)
        lease = int(auth["lease_duration"])
        renewable = "renewable" if auth["renewable"] else "not renewable"
        p.field("ttl", f"{lease}s ({lease / 3600:g}h), {renewable}", 10)
        p.field("metadata", json.dumps(auth.get("metadata") or {}), 10)
        me = http_call(
            self.server.address, "GET", "auth/token/lookup-self", None, auth["client_token"]
        )
        data = self.expect(me, "lookup-self")["data"]
        p.field("lookup", f"display_name {data['display_name']}, ttl {data['ttl']}s left", 10)

    def refusals(self, keys: Keys, other: Keys, role: dict[str, Any]) -> None:
        """Two logins the server must refuse, and why."""
        p = self.p
        p.title(
            f"Refused: another role's credentials (session of {OTHER_IAM_ROLE}) ask for "
            f'role "{ROLE}"'
        )
        answer, exchange = self.login(other)
        result = sts_answer(exchange)
        p.field("STS", f"{exchange.status}: {result.get('Arn', result)} (a valid signature)")
        p.field("server", p.bad(f"{answer.status}: {answer.error}"))
        p.field("why", f'role "{ROLE}" admits only {", ".join(role["bound_iam_principal_arn"])}')
        if answer.status == 200:
            raise DemoError("an unbound principal logged in")

        p.title("Refused: the workload's request signed with a wrong secret key (a forgery)")
        answer, exchange = self.login(keys, secret_key="not-the-secret-key")
        result = sts_answer(exchange)
        p.field("STS", f"{exchange.status}: {result.get('Code', result)}")
        p.field("server", p.bad(f"{answer.status}: {answer.error}"))
        p.field("why", "STS checks every signature; the server never holds the secret key")
        if answer.status == 200:
            raise DemoError("a forged signature logged in")


def _use_color(out: TextIO) -> bool:
    return out.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def run(out: TextIO | None = None) -> int:
    """Run the walkthrough; 0 when the login worked and both forgeries were refused."""
    out = out or sys.stdout
    started = time.monotonic()
    printer = _Printer(out, _use_color(out))
    printer.line("aws-iam-backend demo: an AWS IAM login, step by step, with no AWS account")
    printer.line()
    server: DevServer | None = None
    aws: Emulator | None = None
    tap: StsTap | None = None
    try:
        server = DevServer()  # starts while the emulator does
        aws = Emulator()
        server.wait_ready()
        tap = StsTap(aws.endpoint)
        demo = Demo(aws, server, tap, printer)
        role, keys, other = demo.setup()
        demo.walk(role, keys)
        demo.refusals(keys, other, role)
    except (DemoError, EmulatorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if tap is not None:
            tap.close()
        if server is not None:
            server.stop()
        if aws is not None:
            aws.stop()
    printer.line()
    printer.line(
        f"Done in {time.monotonic() - started:.1f}s: one login succeeded, two were "
        "refused; the emulator and the server are stopped."
    )
    printer.line(
        "Next, the README runs the same login with hvac, curl, the CLI and embedded, "
        "against your own dev server."
    )
    return 0
