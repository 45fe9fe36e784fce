"""The ``aws-iam-backend`` command: ``login`` against a dev server and moto, ``server`` flag,
config and startup errors (one-line messages, non-zero exits, no tracebacks), and a
production ``--config`` server with TLS."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aws_iam_backend.cli import main
from aws_iam_backend.drivers.ratelimit import RateLimits
from aws_iam_backend.server.config import (
    ConfigError,
    ServerConfig,
    config_from_document,
    load_config,
    parse_listen,
)
from tests.support.moto_server import Keys, MotoServer, free_port
from tests.support.server import DevServer, wait_healthy

# ------------------------------------------------------------------------- login


@pytest.fixture(scope="module")
def dev(moto: MotoServer) -> Iterator[DevServer]:
    server = DevServer()
    try:
        server.configure_for(moto)
        yield server
    finally:
        server.stop()


def use_keys(monkeypatch: pytest.MonkeyPatch, keys: Keys | None) -> None:
    """Leave botocore's credential chain only the environment (or nothing)."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)  # fmt: skip
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    if keys is not None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys.secret_key)


def new_user_role(dev: DevServer, moto: MotoServer, **role: Any) -> tuple[str, Keys]:
    name = f"cli{uuid.uuid4().hex[:8]}"
    user, keys = moto.create_user(name)
    dev.client().auth.aws.create_role(
        name, auth_type="iam", bound_iam_principal_arn=[user["Arn"]], **role
    )
    return name, keys


VAULT_VARIABLES = (
    "VAULT_ADDR",
    "VAULT_TOKEN",
    "VAULT_CACERT",
    "VAULT_SKIP_VERIFY",
    "VAULT_CLIENT_TIMEOUT",
    "VAULT_FORMAT",
)


def isolate_vault_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> Path:
    """No Vault variables, and ``home`` as HOME (so ``~/.vault-token`` is the test's)."""
    for name in VAULT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolate_vault_env(monkeypatch, tmp_path / "home")


def test_login_stores_the_token_and_prints_a_table(
    dev: DevServer,
    moto: MotoServer,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    role, keys = new_user_role(dev, moto, policies=["dev"])
    use_keys(monkeypatch, keys)
    code = main(["login", "--address", dev.address, "--role", role, "--region", "us-east-1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    assert out.startswith("Success! You are now authenticated.")
    rows = dict(line.split(None, 1) for line in out.split("\n\n", 1)[1].splitlines())
    assert rows["Key"] == "Value"
    assert rows["token_policies"] == '["default" "dev"]'
    assert rows["identity_policies"] == "[]"
    assert rows["token_renewable"] == "true"
    assert rows["token_duration"] == "768h"
    assert rows["token_meta_auth_type"] == "iam"
    token = rows["token"]
    stored = home / ".vault-token"
    assert stored.read_text() == token
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert sorted(p.name for p in home.iterdir()) == [".vault-token"]  # no temporary left
    me = dev.client(token).auth.token.lookup_self()["data"]
    assert me["policies"] == ["default", "dev"]
    # the next command uses the stored token
    assert main(["token", "lookup", "-address", dev.address, "-field=display_name"]) == 0
    assert capsys.readouterr().out == me["display_name"]


def test_login_json_format_and_vault_addr(
    dev: DevServer,
    moto: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    role, keys = new_user_role(dev, moto)
    use_keys(monkeypatch, keys)
    monkeypatch.setenv("VAULT_ADDR", dev.address)
    assert main(["login", "--role", role, "--region", "eu-west-1", "-format=json"]) == 0
    response = json.loads(capsys.readouterr().out)  # the whole response, as Vault prints it
    assert {"request_id", "lease_id", "lease_duration", "auth"} <= set(response)
    assert response["auth"]["client_token"].startswith("hvs.")
    assert response["auth"]["metadata"]["auth_type"] == "iam"


def test_login_field_and_no_store(
    dev: DevServer,
    moto: MotoServer,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    role, keys = new_user_role(dev, moto)
    use_keys(monkeypatch, keys)
    argv = ["login", "-address", dev.address, "-role", role, "-region=us-east-1"]
    assert main([*argv, "-field=token", "-no-store"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("hvs.")
    assert out == out.strip()  # raw, like vault: no newline when not on a terminal
    assert "not stored" in err
    assert not (home / ".vault-token").exists()
    assert dev.client(out).auth.token.lookup_self()["data"]["meta"]["auth_type"] == "iam"
    assert main([*argv, "--field", "token_accessor", "--no-store=false"]) == 0
    accessor = capsys.readouterr().out
    assert accessor
    assert accessor != out
    assert (home / ".vault-token").read_text().startswith("hvs.")
    assert main([*argv, "-field=nonsense", "-no-store"]) == 1
    assert capsys.readouterr().err.endswith('Field "nonsense" not present in secret\n')


def test_login_vault_spelling_and_existing_token_file(
    dev: DevServer,
    moto: MotoServer,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    role, keys = new_user_role(dev, moto)
    use_keys(monkeypatch, keys)
    stored = home / ".vault-token"
    stored.write_text("old-token")
    stored.chmod(0o644)
    monkeypatch.setenv("VAULT_TOKEN", "root")
    old_umask = os.umask(0)
    try:
        argv = ["login", "-method=aws", "-path=aws", f"-address={dev.address}"]
        code = main([*argv, f"role={role}", "region=us-east-1", "-format=json"])
    finally:
        os.umask(old_umask)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert stored.read_text() == json.loads(out)["auth"]["client_token"]
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert "VAULT_TOKEN environment variable is set" in err  # it wins over the file


def test_login_bad_parameter_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["login", "role=x", "colour=red"])
    assert exit_info.value.code == 2
    assert "expected role=, header_value=, region= or mount=, got 'colour=red'" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "key", ["aws_access_key_id", "aws_secret_access_key", "aws_security_token"]
)
def test_login_credential_parameters_are_refused_unechoed(
    key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    with pytest.raises(SystemExit) as exit_info:
        main(["login", "role=x", f"{key}={secret}"])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert f"{key}= is not supported: the AWS credentials come from botocore" in err
    assert secret not in out + err


def test_login_with_server_id_header(
    dev: DevServer,
    moto: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mount = f"sid{uuid.uuid4().hex[:6]}"
    admin = dev.client()
    admin.sys.enable_auth_method("aws", path=mount)
    dev.configure_for(moto, mount, iam_server_id_header_value="vault.example.com")
    user, keys = moto.create_user(f"sid{uuid.uuid4().hex[:8]}")
    admin.auth.aws.create_role(
        "sid", auth_type="iam", bound_iam_principal_arn=[user["Arn"]], mount_point=mount
    )
    use_keys(monkeypatch, keys)
    base = ["login", "--address", dev.address, "--mount", mount, "--role", "sid", "-field=token"]
    assert main([*base, "--header-value", "vault.example.com"]) == 0
    assert capsys.readouterr().out.startswith("hvs.")
    assert main(base) == 1
    assert "missing header" in capsys.readouterr().err.lower()


@pytest.mark.parametrize(
    ("args", "keys", "message"),
    [
        (
            ["--role", "nobody"],
            True,
            "Error authenticating: Code: 400. Errors: entry for role nobody not found\n",
        ),
        (["--region", "mars-1"], True, "Error authenticating: unknown AWS region: 'mars-1'\n"),
        ([], False, "Error authenticating: no AWS credentials found"),
    ],
)
def test_login_failures(
    dev: DevServer,
    moto: MotoServer,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    keys: bool,
    message: str,
) -> None:
    _user, user_keys = moto.create_user(f"fail{uuid.uuid4().hex[:8]}")
    use_keys(monkeypatch, user_keys if keys else None)
    assert main(["login", "--address", dev.address, *args]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(message)
    assert captured.err.count("\n") == 1
    assert captured.out == ""
    assert not (home / ".vault-token").exists()


def test_login_unreachable_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_keys(monkeypatch, Keys("AKIAIOSFODNN7EXAMPLE", "s"))
    address = f"http://127.0.0.1:{free_port()}"
    assert main(["login", "--address", address]) == 1
    assert capsys.readouterr().err == (
        f"Error authenticating: cannot reach {address}: Connection refused\n"
    )
    assert main(["login", "--address", "ftp://host"]) == 1
    assert "address must be an http(s) URL" in capsys.readouterr().err


# --------------------------------------------------------------- server flag errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "needs --dev or --config FILE"),
        (["--dev", "--config", "x.toml"], "use either --dev or --config FILE, not both"),
        (["--listen", "127.0.0.1:1"], "--listen is only allowed with --dev"),
        (["--config", "x.toml", "--dev-root-token-id", "r"], "--dev-root-token-id is only allowed"),
        (["--storage", "memory://"], "--storage is only allowed with --dev"),
        (["--log-level", "debug"], "--log-level is only allowed with --dev"),
        (["--config", "x.toml", "--log-format", "json"], "--log-format is only allowed"),
        (["--dev", "--listen", "nonsense"], "--listen: expected HOST:PORT"),
        (["--dev", "--listen", "127.0.0.1:99999"], "--listen: expected HOST:PORT"),
        (["--dev", "--dev-root-token-id", " "], "--dev-root-token-id must not be empty"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_server_flag_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["server", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["server", "--dev", "--listen", f"127.0.0.1:{port}"]) == 1
    assert capsys.readouterr().err == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("redis://x", "error: storage: unsupported storage URL"),
        ("sqlite:///", "error: storage: sqlite storage URL needs a file path"),
        (
            "sqlite:////nonexistent-dir/x/s.db",
            "error: storage error: cannot open SQLite database /nonexistent-dir/x/s.db: "
            "SQLITE_CANTOPEN\n",
        ),
    ],
)
def test_bad_storage(storage: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "--dev", "--listen", "127.0.0.1:1", "--storage", storage]) == 1
    assert capsys.readouterr().err.startswith(message)


def test_errors_print_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("log_level = [")
    for args in (["--config", str(tmp_path / "missing.toml")], ["--config", str(bad)]):
        result = subprocess.run(
            [sys.executable, "-m", "aws_iam_backend", "server", *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 1
        assert result.stderr.startswith("error: ")
        assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------- config


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_unreadable_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.toml"
    assert main(["server", "--config", str(missing)]) == 1
    assert capsys.readouterr().err == (
        f"error: cannot read config file {missing}: No such file or directory\n"
    )
    broken = write(tmp_path / "broken.toml", "[listener\n")
    assert main(["server", "--config", broken]) == 1
    assert capsys.readouterr().err.startswith(f"error: invalid TOML in {broken}: ")


BASE = {"listener": {"tls_disable": True}, "root_token": {"env": "ROOT_TOKEN"}}
ENV = {"ROOT_TOKEN": "s3cret-Zq7vK2mXw9LpR4tN8bYc"}


def with_(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            doc.setdefault(section, {})[name] = value
        elif value is None:
            doc.pop(section, None)
        else:
            doc[section] = value
    return doc


def test_config_defaults_and_full_document(tmp_path: Path) -> None:
    assert config_from_document(BASE, ENV) == ServerConfig(
        host="127.0.0.1", port=8200, root_token="s3cret-Zq7vK2mXw9LpR4tN8bYc"
    )
    token_file = write(tmp_path / "token", "from-file-Zq7vK2mXw9LpR4tN8b\n")
    path = write(
        tmp_path / "server.toml",
        f"""
log_level = "debug"
trusted_proxies = ["10.0.0.0/8", "::1"]
default_ttl = "1h"
max_ttl = 7200
[listener]
address = "[::1]:9200"
tls_cert_file = "c.pem"
tls_key_file = "k.pem"
[storage]
url = "sqlite:///x.db"
[root_token]
file = "{token_file}"
""",
    )
    assert load_config(path, {}) == ServerConfig(
        host="::1", port=9200, root_token="from-file-Zq7vK2mXw9LpR4tN8b", storage_url="sqlite:///x.db",
        tls_cert_file="c.pem", tls_key_file="k.pem", default_ttl=3600, max_ttl=7200,
        trusted_proxies=("10.0.0.0/8", "::1"), log_level="debug",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (with_(colour="red"), "unknown key 'colour'"),
        (with_(listener__port=1), "[listener]: unknown key 'port'"),
        (with_(storage="x"), "[storage] must be a table"),
        (with_(listener__address="nope"), "listener.address: expected HOST:PORT"),
        (with_(listener__address=""), "listener.address: expected a non-empty string"),
        (with_(listener__tls_disable="yes"), "listener.tls_disable: expected true or false"),
        (with_(listener={}), "set tls_cert_file and tls_key_file, or tls_disable = true"),
        (with_(listener__tls_cert_file="c"), "set both tls_cert_file and tls_key_file"),
        (
            with_(listener__tls_cert_file="c", listener__tls_key_file="k"),
            "tls_disable = true conflicts with tls_cert_file",
        ),
        (with_(trusted_proxies="10.0.0.1"), "trusted_proxies: expected a list"),
        (with_(trusted_proxies=["nope"]), "invalid trusted proxy address: 'nope'"),
        (with_(log_level="loud"), "log_level: expected one of"),
        (with_(default_ttl="soon"), "default_ttl:"),
        (with_(max_ttl=0), "max_ttl: must be positive"),
        (with_(default_ttl="2h", max_ttl="1h"), "default_ttl: must not exceed max_ttl"),
        (with_(root_token=None), "set exactly one of 'file' or 'env'"),
        (with_(root_token={"env": "A", "file": "b"}), "set exactly one of 'file' or 'env'"),
        (with_(root_token={"literal": "x"}), "[root_token]: unknown key 'literal'"),
        (with_(root_token={"env": "UNSET"}), "environment variable UNSET is empty or unset"),
        (with_(root_token={"file": "/nonexistent"}), "root_token.file: cannot read /nonexistent"),
    ],
)
def test_config_rejections(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        config_from_document(doc, ENV)
    assert message in str(error.value)


def test_limits_section() -> None:
    doc = with_(
        limits={
            "per_source_rate": 5,
            "per_source_burst": 50,
            "per_role_rate": 0,
            "max_concurrent_sts_calls": 8,
            "sts_timeout": 2.5,
            "challenge_ttl": 30,
        }
    )
    config = config_from_document(doc, ENV)
    assert config.rate_limits == RateLimits(
        per_source_rate=5.0, per_source_burst=50, per_role_rate=0.0, max_concurrent_sts_calls=8
    )
    assert (config.sts_timeout, config.challenge_ttl) == (2.5, 30)


@pytest.mark.parametrize(
    ("listener", "message"),
    [
        ({"workers": 0}, "listener.workers: expected an integer from 1 to 64"),
        ({"workers": "2"}, "listener.workers: expected an integer from 1 to 64"),
        ({"workers": 2}, "several workers need shared storage"),
    ],
)
def test_workers_rejections(listener: dict[str, Any], message: str) -> None:
    doc = with_(**{f"listener__{k}": v for k, v in listener.items()})
    with pytest.raises(ConfigError) as error:
        config_from_document(doc, ENV)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"per_source_burst": 1.5}, "limits.per_source_burst: expected a non-negative integer"),
        ({"per_role_rate": -1}, "limits.per_role_rate: expected a non-negative number"),
        ({"per_role_rate": True}, "limits.per_role_rate: expected a non-negative number"),
        ({"sts_timeout": 0}, "sts_timeout and challenge_ttl must be positive"),
        ({"burst": 1}, "[limits]: unknown key 'burst'"),
    ],
)
def test_limits_rejections(limits: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        config_from_document(with_(limits=limits), ENV)
    assert message in str(error.value)


def test_empty_root_token_file(tmp_path: Path) -> None:
    empty = write(tmp_path / "token", "  \n")
    with pytest.raises(ConfigError, match=f"file {empty} is empty"):
        config_from_document(with_(root_token={"file": empty}), ENV)


def test_parse_listen() -> None:
    assert parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_listen("[::]:8200") == ("::", 8200)
    for bad in ("8200", ":8200", "host:", "host:0", "host:x"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_listen(bad)


# ------------------------------------------------------------- production server


def self_signed(tmp_path: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def start_config_server(tmp_path: Path, listener: str) -> tuple[subprocess.Popen[str], int]:
    """``server --config`` on a free port with SQLite storage and the root token from the
    environment (``prod-root``); ``listener`` adds lines to the ``[listener]`` table."""
    port = free_port()
    config = write(
        tmp_path / "server.toml",
        f"""
log_level = "warning"
[listener]
address = "127.0.0.1:{port}"
{listener}
[storage]
url = "sqlite:///{tmp_path / "s.db"}"
[root_token]
env = "TEST_ROOT_TOKEN"
""",
    )
    env = {**os.environ, "TEST_ROOT_TOKEN": "prod-root-Zq7vK2mXw9LpR4tN8bYc"}
    process = subprocess.Popen(
        [sys.executable, "-m", "aws_iam_backend", "server", "--config", config],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return process, port


def test_production_server_with_tls_and_env_root_token(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    listener = f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"'
    process, port = start_config_server(tmp_path, listener)
    address = f"https://127.0.0.1:{port}"
    try:
        context = ssl.create_default_context(cafile=cert)
        wait_tls_healthy(address, process, context)
        with requests.Session() as http:  # closed before shutdown: TLS close waits for peers
            root = {"X-Vault-Token": "prod-root-Zq7vK2mXw9LpR4tN8bYc"}
            mounts = http.get(f"{address}/v1/sys/auth", headers=root, verify=cert, timeout=10)
            assert set(mounts.json()["data"]) == {"token/"}  # production mounts nothing itself
            enabled = http.post(
                f"{address}/v1/sys/auth/aws",
                json={"type": "aws"},
                headers=root,
                verify=cert,
                timeout=10,
            )
            assert enabled.status_code == 204
            other = {"X-Vault-Token": "root"}
            refused = http.get(f"{address}/v1/sys/auth", headers=other, verify=cert, timeout=10)
            assert refused.status_code == 403
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=15)
    assert "Traceback" not in err


def test_production_server_with_worker_processes(tmp_path: Path) -> None:
    process, port = start_config_server(tmp_path, "tls_disable = true\nworkers = 2")
    address = f"http://127.0.0.1:{port}"
    root = {"X-Vault-Token": "prod-root-Zq7vK2mXw9LpR4tN8bYc"}
    try:
        wait_healthy(address, process)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) == 2
        enabled = requests.post(
            f"{address}/v1/sys/auth/aws", json={"type": "aws"}, headers=root, timeout=10
        )
        assert enabled.status_code == 204
        role = {
            "bound_iam_principal_arn": "arn:aws:iam::123456789012:role/app",
            "resolve_aws_unique_ids": False,  # no IAM lookup (no AWS here)
        }
        written = requests.post(
            f"{address}/v1/auth/aws/role/app", json=role, headers=root, timeout=10
        )
        assert written.status_code == 204
        for _ in range(20):  # fresh connections: the kernel spreads them over both workers
            read = requests.get(f"{address}/v1/auth/aws/role/app", headers=root, timeout=10)
            assert read.status_code == 200
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    for child in children:
        assert (
            not Path(f"/proc/{child}").exists()
            or "zombie" in Path(f"/proc/{child}/status").read_text()
        )


def wait_tls_healthy(address: str, process: subprocess.Popen[str], context: ssl.SSLContext) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            urllib.request.urlopen(f"{address}/v1/sys/health", timeout=10, context=context).close()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise AssertionError("TLS server did not become healthy")


def test_bad_tls_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / "server.toml",
        '[listener]\ntls_cert_file = "/nonexistent.crt"\ntls_key_file = "/nonexistent.key"\n'
        '[root_token]\nenv = "TEST_STRONG_ROOT_TOKEN"\n',
    )
    monkeypatch.setenv("TEST_STRONG_ROOT_TOKEN", "tls-Zq7vK2mXw9LpR4tN8bYc-root")
    assert main(["server", "--config", config]) == 1
    assert capsys.readouterr().err == (
        "error: cannot load TLS certificate/key: /nonexistent.crt: No such file or directory\n"
    )


@pytest.mark.parametrize(
    ("case", "blamed", "reason"),
    [
        ("missing key", "key", "No such file or directory"),
        ("certificate is junk", "cert", "no PEM certificate in it"),
        ("key is junk", "key", "not a usable PEM private key"),
        ("key and certificate swapped", "cert", "no PEM certificate in it"),
        ("key of another certificate", "key", "the key does not match the certificate in {cert}"),
    ],
)
def test_tls_errors_name_the_file(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    blamed: str,
    reason: str,
) -> None:
    cert, key = self_signed(tmp_path)
    junk = write(tmp_path / "junk.pem", "not PEM at all\n")
    if case == "missing key":
        key = str(tmp_path / "missing.key")
    elif case == "certificate is junk":
        cert = junk
    elif case == "key is junk":
        key = junk
    elif case == "key and certificate swapped":
        cert, key = key, cert
    else:
        other = tmp_path / "other"
        other.mkdir()
        key = self_signed(other)[1]
    config = write(
        tmp_path / "server.toml",
        f'[listener]\ntls_cert_file = "{cert}"\ntls_key_file = "{key}"\n'
        '[root_token]\nenv = "TEST_STRONG_ROOT_TOKEN"\n',
    )
    monkeypatch.setenv("TEST_STRONG_ROOT_TOKEN", "tls-Zq7vK2mXw9LpR4tN8bYc-root")
    assert main(["server", "--config", config]) == 1
    path = cert if blamed == "cert" else key
    assert capsys.readouterr().err == (
        f"error: cannot load TLS certificate/key: {path}: {reason.format(cert=cert)}\n"
    )


def test_console_script_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aws_iam_backend", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0
    assert "server" in result.stdout
    assert "login" in result.stdout
