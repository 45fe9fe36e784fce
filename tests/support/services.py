"""Fixtures for the real services on the test machine: PostgreSQL and Redis.

- ``postgres_url`` (module scope): a fresh database per test module, dropped afterwards;
  the server comes from ``AWS_IAM_BACKEND_TEST_POSTGRES_URL``.
- ``redis_url`` (session scope): the Redis URL from ``AWS_IAM_BACKEND_TEST_REDIS_URL``,
  after a PING; ``redis_prefix``: a unique key prefix for one test, its keys deleted after.

When a service cannot be reached the test is skipped, or fails when ``CI=true`` (CI must
not pass by skipping). Messages never show a password from the URL.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

POSTGRES_ENV = "AWS_IAM_BACKEND_TEST_POSTGRES_URL"
REDIS_ENV = "AWS_IAM_BACKEND_TEST_REDIS_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CONNECT_TIMEOUT = 5


def postgres_base_url() -> str:
    """The URL of the PostgreSQL server (and database) test databases are created from."""
    return os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL


def redis_base_url() -> str:
    """The URL of the Redis database tests use."""
    return os.environ.get(REDIS_ENV) or DEFAULT_REDIS_URL


def in_ci() -> bool:
    """True under ``CI=true``: an unreachable service fails the test instead of skipping."""
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(service: str, reason: str) -> NoReturn:
    """Skip the test (fail it under ``CI=true``) because ``service`` cannot be used."""
    message = f"{service} unavailable: {reason}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (key=value conninfo strings included)."""
    if "://" not in url:
        words = url.split()
        return " ".join("password=***" if w.startswith("password=") else w for w in words)
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def with_database(url: str, name: str) -> str:
    """``url`` (a URL or a key=value conninfo string) naming database ``name`` instead."""
    if "://" in url:
        return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    from psycopg.conninfo import make_conninfo

    return make_conninfo(url, dbname=name)


def _admin(url: str, statement: str, name: str) -> None:
    """Run ``statement`` (with ``{}`` for the quoted database name) on an autocommit
    connection to ``url``."""
    import psycopg
    from psycopg import sql

    query = sql.SQL(statement).format(sql.Identifier(name))
    with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
        conn.execute(query)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database for this test module."""
    base = postgres_base_url()
    try:
        import psycopg
    except ImportError:
        unavailable("PostgreSQL", "psycopg is not installed (pip install -e '.[test]')")
    name = f"aws_iam_test_{secrets.token_hex(8)}"
    try:
        _admin(base, "CREATE DATABASE {}", name)
    except psycopg.Error as exc:
        unavailable("PostgreSQL", f"cannot create a database via {redact(base)}: {exc}")
    try:
        yield with_database(base, name)
    finally:
        _admin(base, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of the test Redis, which answered a PING."""
    url = redis_base_url()
    try:
        import redis
    except ImportError:
        unavailable("Redis", "redis is not installed (pip install -e '.[test]')")
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT
        )
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError) as exc:
        unavailable("Redis", f"no PING answer from {redact(url)}: {exc}")
    return url


def unique_prefix(label: str = "test") -> str:
    """A key prefix no other test (or run) uses: ``<label>-<random hex>/``."""
    return f"{label}-{secrets.token_hex(8)}/"


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix for this test; every Redis key starting with it is deleted after."""
    prefix = unique_prefix("aws-iam-test")
    yield prefix
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=CONNECT_TIMEOUT)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


__all__ = [
    "postgres_base_url",
    "postgres_url",
    "redact",
    "redis_base_url",
    "redis_prefix",
    "redis_url",
    "unavailable",
    "unique_prefix",
    "with_database",
]
