#!/usr/bin/env python3
"""moatd while its PostgreSQL is away, checked from outside with no Moat code.

Starts a throwaway PostgreSQL cluster of its own (scripts/postgres), a moatd
on it, signs a user in and validates the token (now cached). Then stops the
cluster (pg_ctl stop -m fast, the data kept) and checks that, meanwhile:

  - Sessions.Validate of the cached token still answers OK (within the
    fence, cluster.fence_ms), and UNAVAILABLE once the fence has lapsed;
  - Health answers SERVING with store = STORE_UNAVAILABLE and a stable
    store_reason (STORE_UNAVAILABLE); caches_fenced is false within the
    fence and true (fence_age_ms past the bound) once it lapsed;
  - a write (Users.Create) answers UNAVAILABLE with reason STORE_UNAVAILABLE,
    never INTERNAL, and is not applied;

then starts the cluster again and checks that moatd reconnects by itself:
Health goes back to STORE_READY, the write succeeds, the token validates,
and the user created while the database was away does not exist.

Usage: postgres_outage_check.py MOATD GENERATED_DIR REPO_ROOT
"""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moatwire  # noqa: E402

MOATD, GENERATED, ROOT = sys.argv[1:4]
# A bound long enough for the checks below to run on cached answers, short
# enough to then see it lapse: past it the instance no longer trusts its
# caches (it cannot know what was revoked elsewhere) and Validate asks the
# database, which is away.
FENCE_MS = 15000
moatwire.load(GENERATED)
from moat.rpc.v1 import envelope_pb2  # noqa: E402
from moat.v1 import health_pb2, sessions_pb2, tenants_pb2, users_pb2  # noqa: E402

PASSWORD = "outage-pass-4471-ok"
POSTGRES = os.path.join(ROOT, "scripts", "postgres")


def cluster(command, directory):
    result = subprocess.run([POSTGRES, command, directory], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (command, result.stdout, result.stderr)
    return result.stdout.strip()


def health(daemon):
    connection = moatwire.Connection(daemon.socket)
    try:
        return connection.ok("/moat.v1.Health/Check", health_pb2.CheckRequest(), health_pb2.CheckResponse)
    finally:
        connection.close()


def call(daemon, method, message, reply_type, **kwargs):
    connection = moatwire.Connection(daemon.socket)
    try:
        return connection.call(method, message, reply_type, timeout_ms=30000, **kwargs)
    finally:
        connection.close()


def wait_for(what, predicate, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit("timed out waiting for: " + what)


def main():
    root = tempfile.mkdtemp(prefix="moat-pg-outage.")
    # Its own temporary directory: as root the cluster runs as `moatpg`,
    # which must reach it (mkdtemp's directories are 0700).
    pg_dir = tempfile.mkdtemp(prefix="moat-pg-outage-db.")
    url = cluster("start", pg_dir)
    daemon = moatwire.Daemon(MOATD, os.path.join(root, "data"), args=[
        "--set", "store.backend=postgres", "--set", "store.postgres_url=" + url,
        "--set", "store.postgres_connections=3", "--set", "cluster.fence_ms=%d" % FENCE_MS])
    try:
        daemon.start()
        ready = wait_for("Health to report the caches current",
                         lambda: (lambda h: h if not h.caches_fenced else None)(health(daemon)))
        assert ready.store == health_pb2.CheckResponse.STORE_READY and ready.store_reason == "", ready
        assert ready.fence_age_ms < FENCE_MS, ready
        connection = moatwire.Connection(daemon.socket)
        connection.ok("/moat.v1.Tenants/Create", tenants_pb2.CreateTenantRequest(
            slug="outage", name="Outage", owner_email="owner@outage.test", owner_password=PASSWORD),
            tenants_pb2.CreateTenantResponse)
        signed = connection.ok("/moat.v1.Users/SignIn", users_pb2.SignInRequest(
            email="owner@outage.test", password=PASSWORD), users_pb2.SignInResponse, tenant="outage")
        valid = connection.ok("/moat.v1.Sessions/Validate", sessions_pb2.ValidateRequest(token=signed.session_token),
                              sessions_pb2.ValidateResponse, tenant="outage")
        connection.close()

        # PostgreSQL goes away (its data stays).
        cluster("pause", pg_dir)
        status, again = call(daemon, "/moat.v1.Sessions/Validate",
                             sessions_pb2.ValidateRequest(token=signed.session_token), sessions_pb2.ValidateResponse,
                             tenant="outage")
        assert status.code == envelope_pb2.OK and again.session_id == valid.session_id, status
        down = wait_for("Health to report the store unavailable",
                        lambda: (lambda h: h if h.store == health_pb2.CheckResponse.STORE_UNAVAILABLE else None)(
                            health(daemon)))
        assert down.status == health_pb2.CheckResponse.SERVING, down
        assert down.store_reason == "STORE_UNAVAILABLE", down
        assert not down.caches_fenced, ("still within cluster.fence_ms: the caches answer", down)
        status, _ = call(daemon, "/moat.v1.Users/Create", users_pb2.CreateUserRequest(
            email="during@outage.test", password=PASSWORD), tenants_pb2.User, tenant="outage")
        assert status.code == envelope_pb2.UNAVAILABLE and status.reason == "STORE_UNAVAILABLE", status
        status, again = call(daemon, "/moat.v1.Sessions/Validate",
                             sessions_pb2.ValidateRequest(token=signed.session_token), sessions_pb2.ValidateResponse,
                             tenant="outage")
        assert status.code == envelope_pb2.OK, status
        print("PostgreSQL away: cached Validate OK, Health SERVING with store STORE_UNAVAILABLE (%s s), "
              "Users.Create UNAVAILABLE STORE_UNAVAILABLE" % down.store_unavailable_seconds)

        # Once the fence lapses the cache is not trusted: Validate reads the
        # database, which is away, and answers UNAVAILABLE (never OK, never INTERNAL).
        def fenced():
            status, _ = call(daemon, "/moat.v1.Sessions/Validate",
                             sessions_pb2.ValidateRequest(token=signed.session_token), sessions_pb2.ValidateResponse,
                             tenant="outage")
            if status.code == envelope_pb2.OK:
                return None
            assert status.code == envelope_pb2.UNAVAILABLE and status.reason == "STORE_UNAVAILABLE", status
            return status
        wait_for("the fence to lapse", fenced, seconds=FENCE_MS / 1000 + 30)
        lapsed = health(daemon)
        assert lapsed.caches_fenced and lapsed.fence_age_ms >= FENCE_MS, lapsed
        assert lapsed.status == health_pb2.CheckResponse.SERVING, lapsed
        print("PostgreSQL away past cluster.fence_ms: Validate UNAVAILABLE STORE_UNAVAILABLE (cache not trusted)")

        # It comes back: moatd reconnects on its own.
        cluster("resume", pg_dir)
        wait_for("Health to report the store ready",
                 lambda: health(daemon).store == health_pb2.CheckResponse.STORE_READY)
        wait_for("Health to report the caches current again", lambda: not health(daemon).caches_fenced)
        status, _ = call(daemon, "/moat.v1.Users/Create", users_pb2.CreateUserRequest(
            email="after@outage.test", password=PASSWORD), tenants_pb2.User, tenant="outage")
        assert status.code == envelope_pb2.OK, status
        status, _ = call(daemon, "/moat.v1.Users/Create", users_pb2.CreateUserRequest(
            email="during@outage.test", password=PASSWORD), tenants_pb2.User, tenant="outage")
        assert status.code == envelope_pb2.OK, ("the write refused during the outage was not applied", status)
        status, _ = call(daemon, "/moat.v1.Sessions/Validate",
                         sessions_pb2.ValidateRequest(token=signed.session_token), sessions_pb2.ValidateResponse,
                         tenant="outage")
        assert status.code == envelope_pb2.OK, status
        print("PostgreSQL back: Health STORE_READY, writes OK, the refused write was never applied")
        code = daemon.terminate()
        assert code == 0, (code, daemon.log())
    except BaseException:
        if daemon.process and daemon.process.poll() is None:
            daemon.kill()
        print(daemon.log() if os.path.exists(daemon.log_path) else "", file=sys.stderr)
        raise
    finally:
        subprocess.run([POSTGRES, "stop", pg_dir], capture_output=True, timeout=120)
    print("postgres outage check: ok")


if __name__ == "__main__":
    main()
