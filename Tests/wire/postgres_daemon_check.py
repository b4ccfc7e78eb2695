#!/usr/bin/env python3
"""moatd on PostgreSQL, checked from outside with no Moat code.

Starts the real moatd with `--set store.backend=postgres`, a libpq URL and
the password in `store.postgres_password_file` (a password-authenticated
role), then:

  - Health answers SERVING; Tenants.Create, Users.SignIn, Sessions.Validate
    and Events.Poll work, the events coming from PostgreSQL's outbox;
  - a second moatd (its own data directory, a copy of the same master.key)
    on the same database signs the same user in, validates the first
    instance's token from the shared rows, and its sign-out is refused
    afterwards by its own Validate;
  - a third moatd with another master.key refuses to start, naming the
    fingerprint;
  - the first instance restarted finds its data (the schema is migrated
    once; a restart applies nothing);
  - bad store settings exit 2 with a message naming the key;
  - SIGTERM exits 0.

Messages are generated from proto/ by protoc for Python.

Usage: postgres_daemon_check.py MOATD GENERATED_DIR POSTGRES_URL PASSWORD_FILE
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, sys.argv[2])
from moat.rpc.v1 import envelope_pb2  # noqa: E402
from moat.v1 import events_pb2, health_pb2, sessions_pb2, tenants_pb2, users_pb2  # noqa: E402

MOATD, _, BASE_URL, PASSWORD_FILE = sys.argv[1:5]
PASSWORD = "postgres-pass-8812-ok"
# A schema of its own, so the check starts from an empty database every run.
SCHEMA = "wire_%d_%d" % (os.getpid(), int(time.time()))
URL = BASE_URL + ("&" if "?" in BASE_URL else "?") + "options=-csearch_path%3D" + SCHEMA


def psql(sql):
    env = dict(os.environ, PGPASSWORD=open(PASSWORD_FILE).read().strip(), PGOPTIONS="-c client_min_messages=warning")
    subprocess.run(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", BASE_URL, "-c", sql],
                   check=True, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def call(path, method, message, reply_type, tenant="", authorization=""):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(path)
    try:
        request = envelope_pb2.Request(
            id=1, method=method, tenant=tenant, timeout_ms=20000, authorization=authorization,
            payload=message.SerializeToString())
        body = request.SerializeToString()
        sock.sendall(struct.pack(">I", len(body)) + body)
        header = b""
        while len(header) < 4:
            chunk = sock.recv(4 - len(header))
            assert chunk, "closed by the daemon"
            header += chunk
        (length,) = struct.unpack(">I", header)
        data = b""
        while len(data) < length:
            chunk = sock.recv(length - len(data))
            assert chunk, "closed by the daemon"
            data += chunk
    finally:
        sock.close()
    response = envelope_pb2.Response()
    response.ParseFromString(data)
    reply = reply_type()
    if response.status.code == envelope_pb2.OK:
        reply.ParseFromString(response.payload)
    return response.status, reply


def ok(path, method, message, reply_type, **kwargs):
    status, reply = call(path, method, message, reply_type, **kwargs)
    assert status.code == envelope_pb2.OK, "%s: %s %s %s" % (method, status.code, status.reason, status.message)
    return reply


def settings(data_dir):
    return [
        MOATD, "--data-dir", data_dir, "--log-level", "warning",
        "--set", "store.backend=postgres",
        "--set", "store.postgres_url=%s" % URL,
        "--set", "store.postgres_password_file=%s" % PASSWORD_FILE,
        "--set", "store.postgres_connections=3",
        "--set", "hashing.memory_kib=64", "--set", "hashing.iterations=1", "--set", "hashing.allow_weak=true",
    ]


RUNNING = []


class Daemon:
    def __init__(self, root, name):
        self.data_dir = os.path.join(root, name)
        self.socket = os.path.join(self.data_dir, "moat.sock")
        self.log_path = os.path.join(root, name + ".log")
        self.process = None

    def start(self, expect_exit=False):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(settings(self.data_dir), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        RUNNING.append(self.process)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                if expect_exit:
                    return self.process.returncode
                raise SystemExit("moatd exited at start:\n" + open(self.log_path).read())
            if os.path.exists(self.socket) and not expect_exit:
                try:
                    status, _ = call(self.socket, "/moat.v1.Health/Check", health_pb2.CheckRequest(),
                                     health_pb2.CheckResponse)
                    if status.code == envelope_pb2.OK:
                        return None
                except OSError:
                    pass
            time.sleep(0.05)
        raise SystemExit("moatd did not start (or did not exit) in time:\n" + open(self.log_path).read())

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        assert code == 0, "moatd exited %d on SIGTERM:\n%s" % (code, open(self.log_path).read())


def main():
    root = tempfile.mkdtemp(prefix="moat-pg-daemon.")
    checks = 0
    psql("CREATE SCHEMA %s" % SCHEMA)
    try:
        a = Daemon(root, "a")
        a.start()
        health = ok(a.socket, "/moat.v1.Health/Check", health_pb2.CheckRequest(), health_pb2.CheckResponse)
        assert health.status == health_pb2.CheckResponse.SERVING, health
        created = ok(a.socket, "/moat.v1.Tenants/Create", tenants_pb2.CreateTenantRequest(
            slug="pgcheck", name="PG Check", owner_email="owner@pg.test", owner_password=PASSWORD),
            tenants_pb2.CreateTenantResponse)
        signed = ok(a.socket, "/moat.v1.Users/SignIn", users_pb2.SignInRequest(
            email="owner@pg.test", password=PASSWORD), users_pb2.SignInResponse, tenant="pgcheck")
        valid = ok(a.socket, "/moat.v1.Sessions/Validate", sessions_pb2.ValidateRequest(token=signed.session_token),
                   sessions_pb2.ValidateResponse, tenant="pgcheck")
        assert valid.user_id == created.owner.id, (valid, created.owner)
        polled = ok(a.socket, "/moat.v1.Events/Poll", events_pb2.PollRequest(consumer="pg-check"),
                    events_pb2.PollResponse)
        types = [event.type for event in polled.events]
        assert "tenant.created" in types and "user.created" in types, types
        sequences = [event.sequence for event in polled.events]
        assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences), sequences
        checks += 1
        print("moatd on PostgreSQL: Health, Tenants.Create, SignIn, Validate, Events.Poll (%s)" % ", ".join(types))

        # A second instance on the same database, with the same key.
        b = Daemon(root, "b")
        os.makedirs(b.data_dir, mode=0o750)
        shutil.copy2(os.path.join(a.data_dir, "master.key"), os.path.join(b.data_dir, "master.key"))
        b.start()
        valid_b = ok(b.socket, "/moat.v1.Sessions/Validate", sessions_pb2.ValidateRequest(token=signed.session_token),
                     sessions_pb2.ValidateResponse, tenant="pgcheck")
        assert valid_b.session_id == valid.session_id, (valid_b, valid)
        signed_b = ok(b.socket, "/moat.v1.Users/SignIn", users_pb2.SignInRequest(
            email="owner@pg.test", password=PASSWORD), users_pb2.SignInResponse, tenant="pgcheck")
        ok(b.socket, "/moat.v1.Sessions/SignOut", users_pb2.SignOutRequest(), users_pb2.SignOutResponse,
           tenant="pgcheck", authorization=signed_b.session_token)
        status, _ = call(b.socket, "/moat.v1.Sessions/Validate", sessions_pb2.ValidateRequest(token=signed_b.session_token),
                         sessions_pb2.ValidateResponse, tenant="pgcheck")
        assert status.code == envelope_pb2.UNAUTHENTICATED, status
        listed = ok(b.socket, "/moat.v1.Tenants/List", tenants_pb2.ListTenantsRequest(), tenants_pb2.ListTenantsResponse)
        assert [t.slug for t in listed.tenants] == ["pgcheck"], listed
        checks += 1
        print("second moatd on the same database: shared rows, same key")

        # No key, or another key: refuses to start.
        c = Daemon(root, "c")
        code = c.start(expect_exit=True)
        log = open(c.log_path).read()
        assert code == 1 and "master.key is missing" in log, (code, log)
        descriptor = os.open(os.path.join(c.data_dir, "master.key"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(descriptor, os.urandom(32))
        os.close(descriptor)
        code = c.start(expect_exit=True)
        log = open(c.log_path).read()
        assert code == 1 and "not the key this database was created with" in log, (code, log)
        checks += 1
        print("a moatd without the key, or with another master.key, refuses to start")

        b.stop()
        a.stop()
        a.start()
        again = ok(a.socket, "/moat.v1.Sessions/Validate", sessions_pb2.ValidateRequest(token=signed.session_token),
                   sessions_pb2.ValidateResponse, tenant="pgcheck")
        assert again.session_id == valid.session_id
        a.stop()
        checks += 1
        print("restart: the data is there; SIGTERM exits 0")

        for bad, key in [
            (["--set", "store.backend=mysql"], "store.backend"),
            (["--set", "store.backend=postgres"], "store.postgres_url"),
            (["--set", "store.postgres_url=postgresql://moat:secret@/moat"], "store.postgres_url"),
            (["--set", "store.postgres_url=mysql://x"], "store.postgres_url"),
            (["--set", "store.postgres_connections=0"], "store.postgres_connections"),
        ]:
            result = subprocess.run([MOATD, "--data-dir", os.path.join(root, "bad")] + bad,
                                    capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
            assert result.returncode == 2 and key in result.stderr, (bad, result.returncode, result.stderr)
            assert "secret" not in result.stderr, "a password reached an error message"
        checks += 1
        print("bad store settings exit 2 naming the key")
    finally:
        for process in RUNNING:
            if process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(root, ignore_errors=True)
        psql("DROP SCHEMA %s CASCADE" % SCHEMA)
    print("postgres daemon check: %d checks passed" % checks)


if __name__ == "__main__":
    main()
