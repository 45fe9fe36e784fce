"""The client side of ``aws-iam-backend``: ``token lookup|renew|revoke|create`` against the
dev server, Vault's environment and its precedence, TLS (``--ca-cert``, ``VAULT_CACERT``,
``--tls-skip-verify``), ``--timeout`` against a silent server, ``--version`` and help."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from aws_iam_backend.cli import main
from aws_iam_backend.cli_client import parse_bool, parse_timeout
from aws_iam_backend.cli_output import go_value, table
from aws_iam_backend.client import MAX_RESPONSE
from aws_iam_backend.vault.tokenutil import human_duration
from tests.support.moto_server import Keys, free_port
from tests.support.server import ROOT, DevServer
from tests.test_cli import (
    isolate_vault_env,
    self_signed,
    start_config_server,
    use_keys,
    wait_tls_healthy,
)

PROD_ROOT = "prod-root-Zq7vK2mXw9LpR4tN8bYc"  # tests.test_cli.start_config_server's


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    server = DevServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolate_vault_env(monkeypatch, tmp_path / "home")


@pytest.fixture
def root_env(dev: DevServer, monkeypatch: pytest.MonkeyPatch) -> DevServer:
    monkeypatch.setenv("VAULT_ADDR", dev.address)
    monkeypatch.setenv("VAULT_TOKEN", ROOT)
    return dev


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def rows(out: str) -> dict[str, str]:
    """Vault's table as a dict (its header rows included)."""
    return dict([*line.split(None, 1), ""][:2] for line in out.splitlines())


def create(capsys: pytest.CaptureFixture[str], *flags: str) -> dict[str, object]:
    """``token create ... -format=json``: the response's ``auth``."""
    code, out, err = run(capsys, "token", "create", "-format=json", *flags)
    assert code == 0, err
    auth: dict[str, object] = json.loads(out)["auth"]
    return auth


# ------------------------------------------------------------------------ create


def test_create_table(root_env: DevServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "token", "create", "-policy=dev", "-policy", "ops", "-ttl=1h",
        "-metadata=team=ci", "--metadata", "owner=me", "-renewable=false",
    )  # fmt: skip
    assert code == 0, err
    table_rows = rows(out)
    assert out.splitlines()[:2] == ["Key                  Value", "---                  -----"]
    assert table_rows["token"].startswith("hvs.")
    assert table_rows["token_duration"] == "1h"
    assert table_rows["token_renewable"] == "false"
    assert table_rows["token_policies"] == '["default" "dev" "ops"]'
    assert table_rows["identity_policies"] == "[]"
    assert table_rows["token_meta_owner"] == "me"
    assert table_rows["token_meta_team"] == "ci"


def test_create_json_field_and_flags(
    root_env: DevServer, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = create(
        capsys, "-orphan", "-no-default-policy", "-policy=dev", "-period=2h",
        "-display-name=build", "-use-limit=3",
    )  # fmt: skip
    assert auth["orphan"] is True
    assert auth["policies"] == ["dev"]
    assert auth["lease_duration"] == 7200
    assert auth["num_uses"] == 3
    assert auth["renewable"] is True  # the default
    data = root_env.client().auth.token.lookup(str(auth["client_token"]))["data"]
    assert data["display_name"] == "token-build"
    assert data["period"] == 7200
    code, out, err = run(
        capsys, "token", "create", "--field", "token", "--policy", "dev", "--ttl", "1m"
    )
    assert code == 0, err
    assert out.startswith("hvs.")
    assert "\n" not in out  # raw, as vault prints it when stdout is not a terminal
    code, out, _ = run(capsys, "token", "create", "-policy=dev", "-field=policies", "-format=json")
    assert code == 0
    assert json.loads(out) == ["default", "dev"]


def test_create_refused(dev: DevServer, capsys: pytest.CaptureFixture[str]) -> None:
    token = dev.client().auth.token.create(policies=["dev"])["auth"]["client_token"]
    code, out, err = run(capsys, "token", "create", "-address", dev.address)  # no token at all
    assert code == 1
    assert out == ""
    assert err == "Error creating token: Code: 403. Errors: permission denied\n"
    code, _, err = run(capsys, "token", "create", "-address", dev.address, "-ttl=soon")
    assert err.startswith("Error creating token: Code: 403.")  # no token: refused first
    (Path.home() / ".vault-token").write_text(token + "\n")  # a child token is no root
    code, _, err = run(capsys, "token", "create", "-address", dev.address)
    assert (code, err) == (1, "Error creating token: Code: 403. Errors: permission denied\n")


def test_create_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, "token", "create", "-metadata=novalue")
    assert "-metadata: expected KEY=VALUE, got 'novalue'" in err
    err = usage_error(capsys, "token", "create", "-renewable=maybe")
    assert "ignored explicit argument 'maybe'" in err
    assert "invalid int value" in usage_error(capsys, "token", "create", "-use-limit=x")
    assert "invalid choice: 'yaml'" in usage_error(capsys, "token", "create", "-format=yaml")
    assert "required: COMMAND" in usage_error(capsys, "token")


# ------------------------------------------------------------------------ lookup


def test_lookup_self_other_and_accessor(
    root_env: DevServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "token", "lookup")
    assert code == 0
    me = rows(out)
    assert (me["id"], me["policies"], me["ttl"]) == ("root", "[root]", "0s")
    assert me["expire_time"] == "<nil>"
    assert me["accessor"] == "n/a"  # an empty value, as Vault's columns print it
    auth = create(capsys, "-policy=dev", "-ttl=90m", "-metadata=team=ci")
    code, out, _ = run(capsys, "token", "lookup", str(auth["client_token"]))
    other = rows(out)
    assert (other["policies"], other["creation_ttl"], other["meta"]) == (
        "[default dev]", "1h30m", "map[team:ci]",
    )  # fmt: skip
    assert other["ttl"] in ("1h30m", "1h29m59s", "1h29m58s")
    accessor = str(auth["accessor"])
    code, out, _ = run(capsys, "token", "lookup", "-accessor", "-format=json", accessor)
    data = json.loads(out)["data"]
    assert data["id"] == ""
    assert data["meta"] == {"team": "ci"}
    code, out, _ = run(capsys, "token", "lookup", "-field=display_name", str(auth["client_token"]))
    assert (code, out) == (0, "token")
    code, out, err = run(capsys, "token", "lookup", "-field=nope")
    assert (code, out, err) == (1, "", 'Field "nope" not present in secret\n')
    assert "-accessor needs an ACCESSOR" in usage_error(capsys, "token", "lookup", "-accessor")


def test_lookup_failures(root_env: DevServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "token", "lookup", "hvs.nonexistent")
    assert (code, out, err) == (1, "", "Error looking up token: Code: 403. Errors: bad token\n")
    code, _, err = run(capsys, "token", "lookup", "-accessor", "nonexistent")
    assert err == "Error looking up token: Code: 400. Errors: invalid accessor\n"


def test_vault_format_variable(root_env: DevServer, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("VAULT_FORMAT", "JSON")
    code, out, _ = run(capsys, "token", "lookup")
    assert json.loads(out)["data"]["id"] == ROOT
    code, out, _ = run(capsys, "token", "lookup", "-format=table")
    assert rows(out)["id"] == ROOT
    monkeypatch.setenv("VAULT_FORMAT", "yaml")
    code, out, err = run(capsys, "token", "lookup")
    assert (code, out) == (1, "")
    assert err == "Invalid output format 'yaml' (VAULT_FORMAT): use table or json\n"


# ------------------------------------------------------------------ renew, revoke


def test_renew(root_env: DevServer, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = str(create(capsys, "-policy=dev", "-ttl=1h")["client_token"])
    code, out, err = run(capsys, "token", "renew", "-increment=30m", token)
    assert code == 0, err
    assert rows(out)["token_duration"] == "30m"
    assert rows(out)["token"] == token
    code, out, _ = run(capsys, "token", "renew", "--increment", "20m", "-format=json", token)
    assert json.loads(out)["auth"]["lease_duration"] == 1200
    # without TOKEN: the current one, here VAULT_TOKEN (root), which is not renewable
    (home / ".vault-token").write_text(token)
    code, out, err = run(capsys, "token", "renew")
    assert (code, out) == (1, "")
    assert err == "Error renewing token: Code: 400. Errors: root token is not renewable\n"


def test_renew_with_the_token_file(
    dev: DevServer, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token = dev.client().auth.token.create(policies=["dev"], ttl="1h")["auth"]["client_token"]
    (home / ".vault-token").write_text(token + "\n")
    monkeypatch.setenv("VAULT_ADDR", dev.address)
    code, out, err = run(capsys, "token", "renew", "-increment=15m", "-field=token_duration")
    assert (code, out, err) == (0, "900", "")
    code, out, err = run(capsys, "token", "renew", "-increment=soon")
    assert err == "Error renewing token: Code: 400. Errors: invalid increment\n"


def test_revoke(
    root_env: DevServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    by_token, by_accessor, by_self = (create(capsys, "-policy=dev") for _ in range(3))
    code, out, _ = run(capsys, "token", "revoke", str(by_token["client_token"]))
    assert (code, out) == (0, "Success! Revoked token (if it existed)\n")
    code, out, _ = run(capsys, "token", "revoke", "-accessor", str(by_accessor["accessor"]))
    assert (code, out) == (0, "Success! Revoked token (if it existed)\n")
    for auth in (by_token, by_accessor):
        code, _, err = run(capsys, "token", "lookup", str(auth["client_token"]))
        assert err == "Error looking up token: Code: 403. Errors: bad token\n"
    monkeypatch.setenv("VAULT_TOKEN", str(by_self["client_token"]))
    code, out, _ = run(capsys, "token", "revoke", "-self")
    assert (code, out) == (0, "Success! Revoked token (if it existed)\n")
    code, out, err = run(capsys, "token", "lookup")
    assert (code, err) == (1, "Error looking up token: Code: 403. Errors: permission denied\n")
    code, out, err = run(capsys, "token", "revoke", "-accessor", str(by_self["accessor"]))
    assert (code, out) == (1, "")
    assert err.startswith("Error revoking token: Code: 403.")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "needs a TOKEN (an ACCESSOR with -accessor), or -self"),
        (["-accessor"], "needs a TOKEN (an ACCESSOR with -accessor), or -self"),
        (["-self", "hvs.x"], "-self takes no TOKEN and no -accessor"),
        (["-self", "-accessor"], "-self takes no TOKEN and no -accessor"),
        (["-format=json", "hvs.x"], "unrecognized arguments: -format=json"),
    ],
)
def test_revoke_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in usage_error(capsys, "token", "revoke", *argv)


# ------------------------------------------------------- environment and precedence


def test_address_flag_beats_vault_addr_and_token_beats_file(
    dev: DevServer, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("VAULT_ADDR", dead)
    (home / ".vault-token").write_text("  " + ROOT + "\n")  # trimmed, like Vault's helper
    code, out, err = run(capsys, "token", "lookup", "-field=id")
    assert (code, out) == (1, "")
    assert err == f"Error looking up token: cannot reach {dead}: Connection refused\n"
    code, out, _ = run(capsys, "token", "lookup", "-field=id", "-address", dev.address)
    assert (code, out) == (0, ROOT)  # from the file
    other = dev.client().auth.token.create(policies=["dev"])["auth"]["client_token"]
    monkeypatch.setenv("VAULT_TOKEN", other)
    code, out, _ = run(capsys, "token", "lookup", "-field=id", "--address", dev.address)
    assert (code, out) == (0, other)  # VAULT_TOKEN wins over the file
    monkeypatch.setenv("VAULT_TOKEN", "")
    code, out, _ = run(capsys, "token", "lookup", "-field=id", f"--address={dev.address}")
    assert (code, out) == (0, ROOT)  # an empty VAULT_TOKEN is no token


def test_default_address_is_vaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "token", "lookup", "-timeout=2")
    assert code == 1
    assert err.startswith("Error looking up token: ")
    assert "https://127.0.0.1:8200" in err
    assert err.count("\n") == 1


def test_unreadable_token_file(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / ".vault-token").mkdir()
    code, _, err = run(capsys, "token", "lookup", "-address=http://127.0.0.1:1")
    assert code == 1
    assert err == f"Error reading {home / '.vault-token'}: Is a directory\n"


def test_bad_environment_values(
    dev: DevServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VAULT_ADDR", dev.address)
    monkeypatch.setenv("VAULT_SKIP_VERIFY", "maybe")
    _code, _, err = run(capsys, "token", "lookup")
    assert err == (
        "Error looking up token: could not parse VAULT_SKIP_VERIFY='maybe' as a boolean\n"
    )
    monkeypatch.delenv("VAULT_SKIP_VERIFY")
    monkeypatch.setenv("VAULT_CLIENT_TIMEOUT", "soon")
    _code, _, err = run(capsys, "token", "lookup")
    assert err == "Error looking up token: VAULT_CLIENT_TIMEOUT: invalid duration 'soon'\n"
    err = usage_error(capsys, "token", "lookup", "-timeout=0")
    assert "argument -timeout/--timeout: invalid duration '0': must be positive" in err


def test_loopback_is_never_proxied(
    root_env: DevServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    code, out, err = run(capsys, "token", "lookup", "-field=id")
    assert (code, out, err) == (0, ROOT, "")


class _Redirect(http.server.BaseHTTPRequestHandler):
    """Redirects every request to ``target`` and records the tokens it is sent."""

    target = ""
    tokens: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.tokens.append(self.headers.get("X-Vault-Token"))
        self.send_response(307)
        self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def test_redirects_are_not_followed(
    dev: DevServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", ROOT)
    _Redirect.target = dev.address
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        address = f"http://127.0.0.1:{server.server_address[1]}"
        code, out, err = run(capsys, "token", "lookup", "-address", address)
    finally:
        server.shutdown()
        server.server_close()
    assert (code, out) == (1, "")
    assert err == "Error looking up token: Code: 307. Errors: Temporary Redirect\n"
    assert _Redirect.tokens == [ROOT]


# ------------------------------------------------------- answers the CLI cannot use


@pytest.fixture
def canned() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A server answering 200 with ``answers[PATH]`` at ``/v1/PATH``, else 404: its address
    and the (empty) answers, for the test to fill in."""
    answers: dict[str, bytes] = {}

    class Canned(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = self.path.removeprefix("/v1/")
            body = answers.get(path, b'{"errors": ["no route"]}')
            self.send_response(200 if path in answers else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = _answer

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answers
    finally:
        server.shutdown()
        server.server_close()


SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    ("answers", "flags", "message"),
    [
        ({"auth/aws/login": b""}, [], "{address}: empty response to PUT /v1/auth/aws/login"),
        ({"auth/aws/login": b"[1]"}, [], "{address}: the response is not a JSON object"),
        ({"auth/aws/login": b"{}"}, [], "the response has no auth.client_token"),
        (
            {"auth/aws/login": b'{"auth": {"client_token": ""}}'},
            [],
            "the response has no auth.client_token",
        ),
        (
            {"auth/aws/login": b" " * (MAX_RESPONSE + 1)},
            [],
            f"{{address}}: response larger than {MAX_RESPONSE} bytes",
        ),
        (
            {"auth/aws/challenge": b'{"data": {}}'},
            ["-challenge"],
            "the challenge response has no nonce",
        ),
    ],
)
def test_login_unusable_answers(
    canned: tuple[str, dict[str, bytes]],
    answers: dict[str, bytes],
    flags: list[str],
    message: str,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    address, served = canned
    served.update(answers)
    use_keys(monkeypatch, Keys("AKIAIOSFODNN7EXAMPLE", SECRET_KEY))
    code, out, err = run(capsys, "login", "-address", address, "-role=x", *flags)
    assert (code, out) == (1, "")
    assert err == f"Error authenticating: {message.format(address=address)}\n"
    assert not (home / ".vault-token").exists()


def test_login_cannot_store_the_token(
    canned: tuple[str, dict[str, bytes]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    address, served = canned
    served["auth/aws/login"] = b'{"auth": {"client_token": "hvs.canned-token"}}'
    use_keys(monkeypatch, Keys("AKIAIOSFODNN7EXAMPLE", SECRET_KEY))
    monkeypatch.setenv("HOME", str(tmp_path / "missing"))
    code, out, err = run(capsys, "login", "-address", address, "-role=x")
    assert (code, out, err) == (1, "", "Error storing token: No such file or directory\n")


def test_token_file_not_utf8(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / ".vault-token").write_bytes(b"\xffhvs.x")
    code, out, err = run(capsys, "token", "lookup", "-address=http://127.0.0.1:1")
    assert (code, out, err) == (1, "", f"Error reading {home / '.vault-token'}: not UTF-8 text\n")


def test_no_home_directory(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    code, out, err = run(capsys, "token", "lookup", "-address=http://127.0.0.1:1")
    assert (code, out) == (1, "")
    assert err == "cannot find ~/.vault-token: Could not determine home directory.\n"


# ------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A production server with a self-signed certificate: (address, CA file)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(directory)
    process, port = start_config_server(
        directory, f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"'
    )
    address = f"https://127.0.0.1:{port}"
    try:
        wait_tls_healthy(address, process, ssl.create_default_context(cafile=cert))
        yield address, cert
    finally:
        process.terminate()
        process.communicate(timeout=15)


def test_tls_ca_cert(
    tls_server: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    address, cert = tls_server
    monkeypatch.setenv("VAULT_ADDR", address)
    monkeypatch.setenv("VAULT_TOKEN", PROD_ROOT)
    code, out, err = run(capsys, "token", "lookup", "-field=display_name")
    assert (code, out) == (1, "")
    assert err == (
        f"Error looking up token: TLS certificate of {address} not trusted: self-signed "
        "certificate (give its CA with --ca-cert or VAULT_CACERT)\n"
    )
    code, out, err = run(capsys, "token", "lookup", "-field=display_name", "--ca-cert", cert)
    assert (code, out, err) == (0, "root", "")
    monkeypatch.setenv("VAULT_CACERT", cert)
    code, out, _ = run(capsys, "token", "lookup", "-field=display_name")
    assert (code, out) == (0, "root")
    code, _, err = run(capsys, "token", "lookup", "-ca-cert=/nonexistent.pem")  # flag wins
    assert err == (
        "Error looking up token: cannot load CA certificate /nonexistent.pem: "
        "No such file or directory\n"
    )
    http = "http" + address.removeprefix("https")
    code, _, err = run(capsys, "token", "lookup", "-address", http, "-timeout=5")
    assert code == 1
    assert err.startswith(f"Error looking up token: {http}")  # TLS server, plain client
    assert err.count("\n") == 1


def test_tls_skip_verify(
    tls_server: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    address, _cert = tls_server
    monkeypatch.setenv("VAULT_ADDR", address)
    monkeypatch.setenv("VAULT_TOKEN", PROD_ROOT)
    code, out, err = run(capsys, "token", "lookup", "-field=id", "-tls-skip-verify")
    assert (code, out, err) == (0, PROD_ROOT, "")
    monkeypatch.setenv("VAULT_SKIP_VERIFY", "true")
    code, out, _ = run(capsys, "token", "lookup", "-field=id")
    assert (code, out) == (0, PROD_ROOT)
    code, _, err = run(capsys, "token", "lookup", "-field=id", "--tls-skip-verify=false")
    assert "not trusted: self-signed certificate" in err  # the flag wins over the variable


def test_https_to_a_plain_server(dev: DevServer, capsys: pytest.CaptureFixture[str]) -> None:
    https = "https" + dev.address.removeprefix("http")
    code, _, err = run(capsys, "token", "lookup", "-address", https)
    assert code == 1
    assert err == (
        f"Error looking up token: TLS handshake with {https} failed: WRONG_VERSION_NUMBER "
        "(a plain HTTP server? use http://)\n"
    )


# --------------------------------------------------------------------- timeout


@pytest.fixture
def silent() -> Iterator[str]:
    """A TCP listener that accepts connections (the kernel does) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_timeout_against_a_silent_server(
    silent: str, how: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["token", "lookup", "-address", silent]
    if how == "flag":
        argv.append("--timeout=0.5")
    else:
        monkeypatch.setenv("VAULT_CLIENT_TIMEOUT", "500ms")
    started = time.monotonic()
    code, out, err = run(capsys, *argv)
    assert time.monotonic() - started < 5
    assert (code, out) == (1, "")
    assert err == f"Error looking up token: no response from {silent} within 0.5s\n"


def test_login_timeout_in_a_subprocess(silent: str, home: Path) -> None:
    """The whole command, as a user runs it: prompt, one line, no traceback."""
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
           "AWS_SECRET_ACCESS_KEY": "s", "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "aws_iam_backend", "login", "-role=x", "-timeout=1"],
        env={**env, "VAULT_ADDR": silent}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert time.monotonic() - started < 20
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"Error authenticating: no response from {silent} within 1s\n"
    assert not (home / ".vault-token").exists()


# -------------------------------------------------------------- version and help


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--version", "-version"):
        with pytest.raises(SystemExit) as exit_info:
            main([flag])
        assert exit_info.value.code == 0
        assert capsys.readouterr().out == "aws-iam-backend 0.1.0\n"


@pytest.mark.parametrize(
    ("argv", "example"),
    [
        ([], "aws-iam-backend login -role=dev"),
        (["login"], "aws-iam-backend login -method=aws role=ci header_value=vault.example.com"),
        (["token"], "aws-iam-backend token lookup -format=json hvs.CAESI..."),
        (["token", "lookup"], "aws-iam-backend token lookup -accessor -format=json"),
        (["token", "renew"], "aws-iam-backend token renew -increment=30m hvs.CAESI..."),
        (["token", "revoke"], "aws-iam-backend token revoke -self"),
        (["token", "create"], "aws-iam-backend token create -policy=dev -ttl=1h"),
    ],
)
def test_help_shows_examples(
    argv: list[str], example: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert example in out


# ------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (5, "5s"), (60, "1m"), (90, "1m30s"), (3600, "1h"), (3601, "1h1s"),
     (3660, "1h1m"), (2764800, "768h"), (-90, "-1m30s")],
)  # fmt: skip
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_go_value_and_table() -> None:
    assert go_value(None) == "<nil>"
    assert go_value([True, 1, "a"]) == "[true 1 a]"
    assert go_value({"b": [1], "a": None}) == "map[a:<nil> b:[1]]"
    assert table([("id", "x"), ("accessor", "")]) == (
        "Key         Value\n---         -----\nid          x\naccessor    n/a"
    )


def test_parse_timeout_and_bool() -> None:
    assert [parse_timeout(t) for t in ("30", "2.5", "90s", "1m30s", "500ms", "1h")] == [
        30, 2.5, 90, 90, 0.5, 3600,
    ]  # fmt: skip
    for bad in ("", "0", "-1", "nan", "inf", "1d", "s", "1m 30s"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_timeout(bad)
    assert [parse_bool(t) for t in ("1", "true", "T", "0", "False", "yes")] == [
        True, True, True, False, False, None,
    ]  # fmt: skip
