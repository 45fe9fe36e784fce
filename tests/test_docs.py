"""The documentation and the deploy/ examples against the repository and the code.

The site build (``mkdocs build --strict`` in CI) checks links, anchors and the nav too; these
tests need no mkdocs, and also pin what the pages promise: the storage example keeps the
storage contract, unknown fields warn as http-api.md says, and the deploy/ files agree with
each other and with docs/server.md.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from aws_iam_backend import MemoryStorage
from aws_iam_backend.errors import ConflictError, InternalError
from aws_iam_backend.io.protocols import ABSENT, Check, Delete, Put
from aws_iam_backend.server import VaultAPI
from aws_iam_backend.server.config import load_config
from aws_iam_backend.server.messages import HTTPRequest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DEPLOY = ROOT / "deploy"
PAGES = sorted(path for path in DOCS.rglob("*.md") if "_ext" not in path.parts)
LINKED = [*PAGES, DEPLOY / "README.md"]
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(?P<text>.+?)\s*#*\s*$", re.MULTILINE)


def _load_hooks() -> Any:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "_ext" / "hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


github_slug = cast(Callable[[str, str], str], _load_hooks().github_slug)


def prose(text: str) -> str:
    """``text`` without fenced blocks and code spans (where brackets are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def anchors(page: Path) -> set[str]:
    """The anchors of ``page``'s headings, as GitHub and the site (docs/_ext/hooks.py) make
    them: formatting and links reduced to their text, repeats numbered."""
    found: set[str] = set()
    for match in HEADING.finditer(FENCE.sub("", page.read_text(encoding="utf-8"))):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match["text"])
        slug = github_slug(text.replace("`", ""), "-")
        candidate, number = slug, 0
        while candidate in found:
            number += 1
            candidate = f"{slug}-{number}"
        found.add(candidate)
    return found


def relative_links(page: Path) -> Iterator[tuple[str, Path, str]]:
    """``(link, file, anchor)`` for every link of ``page`` into the repository."""
    for match in LINK.finditer(prose(page.read_text(encoding="utf-8"))):
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        yield target, (page.parent / path).resolve() if path else page, anchor


@pytest.mark.parametrize("page", LINKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target, path, anchor in relative_links(page):
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = config[config.index("\nnav:") :]
    listed = set(re.findall(r"(\S+\.md)\s*$", nav, re.MULTILINE))
    pages = {str(page.relative_to(DOCS)) for page in PAGES}
    assert pages - listed == set(), "pages missing from the nav in mkdocs.yml"
    assert listed - pages == set(), "nav entries without a page"


@pytest.mark.parametrize(
    "path", [*PAGES, *sorted(DEPLOY.iterdir())], ids=lambda p: str(p.relative_to(ROOT))
)
def test_docs_stand_alone(path: Path) -> None:
    """The pages cite what the project's private reference notes say, never the notes."""
    text = path.read_text(encoding="utf-8")
    for name in ("attacks.md", "behaviour.md", "vault-iam-spec.md", "peers.md", "style.md"):
        assert name not in text, f"{path.name} names {name}, which is not in the repository"
    assert "../shared" not in text


# ------------------------------------------------------------------ storage.md


def dict_storage() -> Any:
    """The ``DictStorage`` that storage.md gives as a minimal, correct store, run as written."""
    text = (DOCS / "storage.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "DictStorage" in b]
    assert len(blocks) == 1
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], "docs/storage.md", "exec"), namespace)
    return namespace["DictStorage"]()


def test_the_storage_example_keeps_the_contract() -> None:
    store = dict_storage()
    assert store.read("a") is None
    (one,) = store.commit([Put("role/b", {"n": 1}, expect=ABSENT, expires_at=20.0)])
    (two, _) = store.commit([Put("role/a", {"n": 2}, expires_at=10.0), Put("x", {})])
    assert one >= 1
    assert two > one
    doc = store.read("role/b")
    assert (doc.key, doc.value, doc.version, doc.expires_at) == ("role/b", {"n": 1}, one, 20.0)
    assert store.list("role/") == ["a", "b"]
    assert [d.key for d in store.expired("role/", 15.0, 10)] == ["role/a"]
    assert [d.key for d in store.expired("role/", 30.0, 1)] == ["role/a"]
    # A failed condition anywhere in a commit changes nothing.
    with pytest.raises(ConflictError):
        store.commit([Put("role/a", {"n": 3}), Put("role/b", {}, expect=one + 100)])
    assert store.read("role/a").value == {"n": 2}
    with pytest.raises(ConflictError):
        store.commit([Put("y", {}), Check("role/b", one + 1)])
    assert store.read("y") is None
    assert store.commit([Check("role/b", one), Delete("role/a")]) == (one, 0)
    # A version is never reused, even after a delete and a re-create.
    (again,) = store.commit([Put("role/a", {"n": 4}, expect=ABSENT)])
    assert again > two
    with pytest.raises(ValueError, match="more than once"):
        store.commit([Put("z", {}), Delete("z")])
    with pytest.raises(InternalError, match="not JSON"):
        store.commit([Put("ok", {}), Put("nan", {"x": float("nan")})])  # nothing is written
    assert store.read("ok") is None
    assert store.read("nan") is None


# ------------------------------------------------------------------ http-api.md


def call(api: VaultAPI, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = HTTPRequest(
        method=method,
        path=path,
        headers={"x-vault-token": "root"},
        body=b"" if body is None else json.dumps(body).encode(),
        remote_addr="127.0.0.1",
    )
    response = api.handle(request)
    return response.status, json.loads(response.body) if response.body else None


WARNING = ["Endpoint ignored these unrecognized parameters: [colour rotation_period]"]
ARN = "arn:aws:iam::123456789012:role/app"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/auth/aws/config/client", {"max_retries": 2}),
        ("/v1/auth/aws/config/identity", {"iam_alias": "unique_id"}),
        ("/v1/auth/aws/config/sts/123456789012", {"sts_role": ARN}),
        (
            "/v1/auth/aws/role/app",
            {"bound_iam_principal_arn": ARN, "resolve_aws_unique_ids": False},
        ),
        ("/v1/sys/auth/aws/tune", {"description": "d"}),
    ],
)
def test_unknown_fields_are_ignored_with_a_warning(path: str, body: dict[str, Any]) -> None:
    """http-api.md: a write with unknown fields answers 200 with Vault's warning, and the
    known fields are written."""
    api = VaultAPI(storage=MemoryStorage(), root_token="root")
    assert call(api, "POST", "/v1/sys/auth/aws", {"type": "aws"})[0] == 204
    assert call(api, "POST", path, body)[0] == 204
    status, reply = call(api, "POST", path, {**body, "colour": "red", "rotation_period": 60})
    assert (status, reply["warnings"]) == (200, WARNING)


def test_enable_ignores_unknown_fields_without_a_warning() -> None:
    api = VaultAPI(storage=MemoryStorage(), root_token="root")
    body = {"type": "aws", "colour": "red", "config": {"colour": "red"}}
    assert call(api, "POST", "/v1/sys/auth/aws", body) == (204, None)


# ---------------------------------------------------------------------- deploy/

ENVIRON = {
    "AWS_IAM_BACKEND_ROOT_TOKEN": "deploy-Zq7vK2mXw9LpR4tN8bYc-root",
    "AWS_IAM_BACKEND_SEAL_KEY": base64.b64encode(bytes(range(32))).decode(),
}


def unit() -> dict[str, list[str]]:
    """deploy/aws-iam-backend.service's settings, each with every value it is given."""
    settings: dict[str, list[str]] = {}
    for line in (DEPLOY / "aws-iam-backend.service").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_the_deploy_config_loads() -> None:
    config = load_config(str(DEPLOY / "server.toml"), ENVIRON)
    assert (config.host, config.port, config.tls_cert_file) == ("127.0.0.1", 8200, None)
    assert config.trusted_proxies == ("127.0.0.1",)
    assert config.storage_url.startswith("sqlite:////var/lib/aws-iam-backend/")
    assert config.audit_file is not None
    assert config.audit_file.startswith("/var/log/aws-iam-backend/")
    assert config.root_token == ENVIRON["AWS_IAM_BACKEND_ROOT_TOKEN"]


def test_the_systemd_unit_is_hardened_and_matches_the_config() -> None:
    settings = unit()
    expected = {
        "User": "aws-iam-backend",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "EnvironmentFile": "/etc/aws-iam-backend/secrets.env",
    }
    for key, value in expected.items():
        assert settings.get(key) == [value], key
    assert "@system-service" in settings["SystemCallFilter"]
    assert settings["ExecStart"][0].endswith(
        "aws-iam-backend server --config /etc/aws-iam-backend/server.toml"
    )
    # docs/server.md's LimitNOFILE, and writable directories for the state and the audit log
    documented = re.search(r"^LimitNOFILE=(\d+)", (DOCS / "server.md").read_text(), re.MULTILINE)
    assert documented is not None
    assert settings["LimitNOFILE"] == [documented[1]]
    config = load_config(str(DEPLOY / "server.toml"), ENVIRON)
    writable = settings["ReadWritePaths"][0].split()
    assert config.audit_file is not None
    for path in (config.storage_url.removeprefix("sqlite:///"), config.audit_file):
        assert str(Path(path).parent) in writable, path


def test_the_proxies_reach_the_server_as_a_trusted_proxy() -> None:
    config = load_config(str(DEPLOY / "server.toml"), ENVIRON)
    address = f"{config.host}:{config.port}"
    assert config.host in config.trusted_proxies
    nginx = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    assert f"server {address};" in nginx
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx
    assert "proxy_next_upstream off;" in nginx
    caddy = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")
    assert f"reverse_proxy {address} {{" in caddy
    assert "header_up X-Forwarded-For {remote_host}" in caddy
