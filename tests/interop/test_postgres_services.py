"""The PostgreSQL the suite runs servers with (tools/pg-test-cluster.sh, conftest.py's
postgres_url, postgres_db and postgres_cluster fixtures): reachable with a password over
loopback TCP, one fresh database per test, a private cluster that stops and starts again."""

from __future__ import annotations

import os
import subprocess
import threading
from urllib.parse import urlsplit

import psycopg
import pytest

import services


def test_shared_cluster_is_postgresql_15_with_a_password(postgres_url):
    parts = urlsplit(postgres_url)
    assert parts.scheme == "postgres" and parts.hostname == "127.0.0.1" and parts.username == "swapline"
    assert parts.password and parts.port and parts.path == "/swapline"
    with services.connect(postgres_url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()[0]
        assert int(version) // 10000 == 15, version
        assert conn.execute("SELECT current_user").fetchone()[0] == "swapline"
        assert conn.execute("SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user").fetchone()[0]

    wrong = postgres_url.replace(f":{parts.password}@", ":wrong@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        services.connect(wrong)


def test_password_from_pgpassword_or_a_password_file(postgres_url, tmp_path):
    """The ways docs/deploy.md gives the server its password, as libpq itself reads them."""
    parts = urlsplit(postgres_url)
    bare = postgres_url.replace(f":{parts.password}@", "@")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    query = ["psql", "-X", "-At", "-c", "SELECT current_user", bare]
    assert subprocess.run(query, env={**env, "PGPASSWORD": parts.password}, capture_output=True, text=True,
                          timeout=30).stdout.strip() == "swapline"
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{parts.port}:*:swapline:{parts.password}\n")
    passfile.chmod(0o600)
    assert subprocess.run(query, env={**env, "PGPASSFILE": str(passfile)}, capture_output=True, text=True,
                          timeout=30).stdout.strip() == "swapline"
    refused = subprocess.run(query, env={**env, "PGCONNECT_TIMEOUT": "5"}, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0


def test_each_test_gets_a_fresh_database(postgres_url, postgres_db):
    assert postgres_db != postgres_url
    with services.connect(postgres_db) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0
        conn.execute("CREATE TABLE probe (id int PRIMARY KEY)")
        conn.execute("INSERT INTO probe VALUES (1)")
    other = services.create_database(postgres_url)
    try:
        with services.connect(other) as conn:
            assert conn.execute("SELECT to_regclass('probe')").fetchone()[0] is None
    finally:
        services.drop_database(other)
    with services.connect(postgres_url) as conn:
        name = urlsplit(other).path.lstrip("/")
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()[0] == 0


def test_dropping_a_database_disconnects_its_users(postgres_url):
    """A server under test may still hold connections when its test ends."""
    url = services.create_database(postgres_url)
    holder = services.connect(url)
    services.drop_database(url)
    with pytest.raises(psycopg.OperationalError):
        holder.execute("SELECT 1")
    holder.close()


def test_private_cluster_stops_and_starts_again_on_the_same_port(postgres_cluster):
    url = postgres_cluster.url
    with services.connect(url) as conn:
        conn.execute("CREATE TABLE kept (id int)")
        conn.execute("INSERT INTO kept VALUES (7)")
    held = services.connect(url)

    postgres_cluster.pause()
    assert not postgres_cluster.accepting()
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()
    with pytest.raises(psycopg.OperationalError):
        services.connect(url)

    # A client retrying while PostgreSQL is down gets in once it is back.
    connected = threading.Event()

    def retry():
        for _ in range(100):
            try:
                services.connect(url).close()
                connected.set()
                return
            except psycopg.OperationalError:
                threading.Event().wait(0.1)

    retrier = threading.Thread(target=retry, daemon=True)
    retrier.start()
    postgres_cluster.resume()
    retrier.join(15)
    assert connected.is_set()
    with services.connect(url) as conn:
        assert conn.execute("SELECT id FROM kept").fetchone()[0] == 7
