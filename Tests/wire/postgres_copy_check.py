#!/usr/bin/env python3
"""Moving a deployment: `moatd --copy-to-postgres`, checked end to end.

A real moatd on SQLite gets tenants, users, sessions (one revoked), 2FA
(a sealed TOTP secret), a reset token, events and a consumer with an
acknowledged cursor; it is stopped. The copy command moves its moat.db into
an empty PostgreSQL schema; then:

  - every table has the same row count on both sides;
  - a second copy into the now non-empty target is refused (exit 1) and
    changes nothing;
  - moatd started on PostgreSQL with the same data directory (same
    master.key) validates every token that validated before, refuses the
    revoked one, opens the sealed secret (2FA Verify with a fresh code),
    and the consumer resumes after its acknowledged cursor, new events
    numbered after the old ones.

Usage: postgres_copy_check.py MOATD GENERATED_DIR POSTGRES_URL
"""
import base64
import hashlib
import hmac
import os
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moatwire  # noqa: E402

MOATD, GENERATED, BASE_URL = sys.argv[1:4]
moatwire.load(GENERATED)
from moat.rpc.v1 import envelope_pb2  # noqa: E402
from moat.v1 import events_pb2, sessions_pb2, tenants_pb2, two_factor_pb2, users_pb2  # noqa: E402

PASSWORD = "copy-pass-6620-ok"
SCHEMA = "copy_%d_%d" % (os.getpid(), int(time.time()))
URL = BASE_URL + ("&" if "?" in BASE_URL else "?") + "options=-csearch_path%3D" + SCHEMA
TABLES = ["tenants", "users", "sessions", "password_resets", "events", "security_log", "meta", "two_factor",
          "two_factor_pending", "recovery_codes", "sign_in_challenges", "event_consumers", "teams", "team_members",
          "team_invitations", "address_failures", "unknown_email_failures"]


def psql(sql):
    result = subprocess.run(["psql", "-q", "-X", "-t", "-A", "-v", "ON_ERROR_STOP=1", BASE_URL, "-c", sql],
                            capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning -c search_path=" + SCHEMA))
    return result.stdout.strip()


def totp(secret_base32, at):
    key = base64.b32decode(secret_base32.replace(" ", "").upper() + "=" * (-len(secret_base32.replace(" ", "")) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 15
    return "%06d" % ((struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1000000)


def main():
    root = tempfile.mkdtemp(prefix="moat-pg-copy.")
    data = os.path.join(root, "data")
    psql("CREATE SCHEMA %s" % SCHEMA)
    sqlite_daemon = moatwire.Daemon(MOATD, data)
    sqlite_daemon.start()
    c = moatwire.Connection(sqlite_daemon.socket)
    c.ok("/moat.v1.Tenants/Create", tenants_pb2.CreateTenantRequest(
        slug="move", name="Move", owner_email="owner@move.test", owner_password=PASSWORD),
        tenants_pb2.CreateTenantResponse)
    c.ok("/moat.v1.Tenants/Create", tenants_pb2.CreateTenantRequest(
        slug="other", name="Other", owner_email="owner@other.test", owner_password=PASSWORD),
        tenants_pb2.CreateTenantResponse)
    tokens = {}
    for email in ["alice@move.test", "bob@move.test", "carol@move.test"]:
        c.ok("/moat.v1.Users/Create", users_pb2.CreateUserRequest(email=email, password=PASSWORD),
             tenants_pb2.User, tenant="move")
        tokens[email] = c.ok("/moat.v1.Users/SignIn", users_pb2.SignInRequest(email=email, password=PASSWORD),
                             users_pb2.SignInResponse, tenant="move").session_token
    tokens["owner@other.test"] = c.ok("/moat.v1.Users/SignIn", users_pb2.SignInRequest(
        email="owner@other.test", password=PASSWORD), users_pb2.SignInResponse, tenant="other").session_token
    revoked = c.ok("/moat.v1.Users/SignIn", users_pb2.SignInRequest(email="bob@move.test", password=PASSWORD),
                   users_pb2.SignInResponse, tenant="move").session_token
    c.ok("/moat.v1.Sessions/SignOut", users_pb2.SignOutRequest(), users_pb2.SignOutResponse, tenant="move",
         authorization=revoked)
    enrollment = c.ok("/moat.v1.TwoFactor/BeginEnrollment", two_factor_pb2.BeginEnrollmentRequest(password=PASSWORD),
                      two_factor_pb2.BeginEnrollmentResponse, tenant="move", authorization=tokens["alice@move.test"])
    c.ok("/moat.v1.TwoFactor/ConfirmEnrollment", two_factor_pb2.ConfirmEnrollmentRequest(
        code=totp(enrollment.secret, time.time())), two_factor_pb2.ConfirmEnrollmentResponse, tenant="move",
        authorization=tokens["alice@move.test"])
    c.ok("/moat.v1.Users/RequestPasswordReset", users_pb2.RequestPasswordResetRequest(email="carol@move.test"),
         users_pb2.RequestPasswordResetResponse, tenant="move")
    status, _ = c.call("/moat.v1.Users/SignIn", users_pb2.SignInRequest(email="nobody@move.test", password="wrong-guess-1"),
                       users_pb2.SignInResponse, tenant="move")
    assert status.code == envelope_pb2.UNAUTHENTICATED, status
    polled = c.ok("/moat.v1.Events/Poll", events_pb2.PollRequest(consumer="mailer", max_events=5),
                  events_pb2.PollResponse)
    acked = polled.events[-1].sequence
    c.ok("/moat.v1.Events/Ack", events_pb2.AckRequest(consumer="mailer", sequence=acked), events_pb2.AckResponse)
    for token in tokens.values():
        tenant = "other" if token == tokens["owner@other.test"] else "move"
        c.ok("/moat.v1.Sessions/Validate", sessions_pb2.ValidateRequest(token=token), sessions_pb2.ValidateResponse,
             tenant=tenant)
    c.close()
    assert sqlite_daemon.terminate() == 0, sqlite_daemon.log()

    database = sqlite3.connect(os.path.join(data, "moat.db"))
    before = {table: database.execute("SELECT count(*) FROM %s" % table).fetchone()[0] for table in TABLES}
    newest = database.execute("SELECT max(sequence) FROM events").fetchone()[0]
    database.close()

    copy = moatwire.run([MOATD, "--data-dir", data, "--set", "store.postgres_url=" + URL, "--copy-to-postgres"])
    assert copy.returncode == 0, (copy.stdout, copy.stderr)
    after = {table: int(psql("SELECT count(*) FROM %s" % table)) for table in TABLES}
    assert before == after, (before, after)
    assert int(psql("SELECT value FROM event_sequence")) == newest
    print("copied: row counts match (%s)" % ", ".join("%s %d" % (t, before[t]) for t in TABLES if before[t]))

    again = moatwire.run([MOATD, "--data-dir", data, "--set", "store.postgres_url=" + URL, "--copy-to-postgres"])
    assert again.returncode == 1 and "not empty" in again.stderr, (again.returncode, again.stdout, again.stderr)
    assert {table: int(psql("SELECT count(*) FROM %s" % table)) for table in TABLES} == after
    print("a second copy into the non-empty target is refused and changes nothing")

    pg_daemon = moatwire.Daemon(MOATD, data, args=["--set", "store.backend=postgres", "--set", "store.postgres_url=" + URL])
    pg_daemon.start()
    try:
        c = moatwire.Connection(pg_daemon.socket)
        for email, token in tokens.items():
            tenant = "other" if email == "owner@other.test" else "move"
            c.ok("/moat.v1.Sessions/Validate", sessions_pb2.ValidateRequest(token=token),
                 sessions_pb2.ValidateResponse, tenant=tenant)
        status, _ = c.call("/moat.v1.Sessions/Validate", sessions_pb2.ValidateRequest(token=revoked),
                           sessions_pb2.ValidateResponse, tenant="move")
        assert status.code == envelope_pb2.UNAUTHENTICATED, status
        code = totp(enrollment.secret, time.time() + 30)
        c.ok("/moat.v1.TwoFactor/Verify", two_factor_pb2.VerifyTwoFactorRequest(code=code),
             two_factor_pb2.VerifyTwoFactorResponse, tenant="move", authorization=tokens["alice@move.test"])
        polled = c.ok("/moat.v1.Events/Poll", events_pb2.PollRequest(consumer="mailer", max_events=1000),
                      events_pb2.PollResponse)
        assert polled.events and polled.events[0].sequence == acked + 1, (acked, [e.sequence for e in polled.events])
        c.ok("/moat.v1.Users/Create", users_pb2.CreateUserRequest(email="dave@move.test", password=PASSWORD),
             tenants_pb2.User, tenant="move")
        fresh = c.ok("/moat.v1.Events/Poll", events_pb2.PollRequest(consumer="mailer", max_events=1000),
                     events_pb2.PollResponse)
        assert fresh.events[-1].sequence > newest, (newest, [e.sequence for e in fresh.events])
        status, _ = c.call("/moat.v1.Users/SignIn", users_pb2.SignInRequest(email="nobody@move.test", password="x-guess-2"),
                           users_pb2.SignInResponse, tenant="move")
        assert status.code == envelope_pb2.UNAUTHENTICATED, status
        c.close()
        print("moatd on PostgreSQL: every token validates, the revoked one does not, the sealed 2FA secret opens, "
              "the consumer resumes after its cursor, new events follow the old sequence")
        assert pg_daemon.terminate() == 0, pg_daemon.log()
    except BaseException:
        if pg_daemon.process.poll() is None:
            pg_daemon.kill()
        print(pg_daemon.log(), file=sys.stderr)
        raise
    finally:
        psql("DROP SCHEMA %s CASCADE" % SCHEMA)
    print("postgres copy check: ok")


if __name__ == "__main__":
    main()
