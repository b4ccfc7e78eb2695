#!/usr/bin/env python3
"""Several moatd on one PostgreSQL behave as one, checked from outside.

Starts three real moatd processes (each its own data directory and a copy
of the same master.key) on one throwaway PostgreSQL schema, warms every
instance's session cache, then:

  (a) a session revoked through A (SignOut, Revoke, RevokeAllForUser) is
      refused by B and C on the first Validate after the revoking call
      returned;
  (b) a user disabled through A, and a tenant policy changed through A,
      show on B and C at once (Validate refused; two_factor_setup_required
      flips), and so does a tenant scheduled for deletion and its
      cancellation;
  (c) with B stopped (SIGSTOP), a revocation through A returns within the
      fencing bound plus a margin; after SIGCONT, B refuses the revoked
      token on its first Validate;
  (d) validators on every instance while sessions are revoked through
      random instances: 0 successes for a token after its revoking call
      returned.

Python's stock protobuf messages from proto/ (protoc), no Moat code.

Usage: cluster_check.py MOATD GENERATED_DIR POSTGRES_URL PASSWORD_FILE
"""
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, sys.argv[2])
from moat.rpc.v1 import envelope_pb2  # noqa: E402
from moat.v1 import health_pb2, sessions_pb2, tenants_pb2, users_pb2  # noqa: E402

MOATD, _, BASE_URL, PASSWORD_FILE = sys.argv[1:5]
PASSWORD = "cluster-pass-5521-ok"
FENCE_MS = 250
# What "within the bound" may add on a loaded 2-core machine: the call's own
# work, the scheduler, Python.
MARGIN_MS = 750
SCHEMA = "cluster_%d_%d" % (os.getpid(), int(time.time()))
URL = BASE_URL + ("&" if "?" in BASE_URL else "?") + "options=-csearch_path%3D" + SCHEMA
OK = 0
UNAUTHENTICATED = 16


def psql(sql):
    env = dict(os.environ, PGPASSWORD=open(PASSWORD_FILE).read().strip(), PGOPTIONS="-c client_min_messages=warning")
    subprocess.run(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", BASE_URL, "-c", sql],
                   check=True, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


class Connection:
    """One socket to one moatd, one call at a time."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.next_id = 1

    def close(self):
        self.sock.close()

    def _read(self, count):
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            assert chunk, "closed by the daemon"
            data += chunk
        return data

    def call(self, method, message, reply_type, tenant="", authorization=""):
        request = envelope_pb2.Request(
            id=self.next_id, method=method, tenant=tenant, timeout_ms=20000, authorization=authorization,
            payload=message.SerializeToString())
        self.next_id += 1
        body = request.SerializeToString()
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        (length,) = struct.unpack(">I", self._read(4))
        response = envelope_pb2.Response()
        response.ParseFromString(self._read(length))
        reply = reply_type()
        if response.status.code == OK:
            reply.ParseFromString(response.payload)
        return response.status, reply

    def ok(self, method, message, reply_type, **kwargs):
        status, reply = self.call(method, message, reply_type, **kwargs)
        assert status.code == OK, "%s: %s %s %s" % (method, status.code, status.reason, status.message)
        return reply

    def validate(self, token, tenant="cluster"):
        return self.call("/moat.v1.Sessions/Validate", sessions_pb2.ValidateRequest(token=token),
                         sessions_pb2.ValidateResponse, tenant=tenant)


RUNNING = []


class Daemon:
    def __init__(self, root, name):
        self.name = name
        self.data_dir = os.path.join(root, name)
        self.socket = os.path.join(self.data_dir, "moat.sock")
        self.log_path = os.path.join(root, name + ".log")
        self.process = None

    def start(self):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([
            MOATD, "--data-dir", self.data_dir, "--log-level", "warning",
            "--set", "store.backend=postgres", "--set", "store.postgres_url=%s" % URL,
            "--set", "store.postgres_password_file=%s" % PASSWORD_FILE, "--set", "store.postgres_connections=3",
            "--set", "cluster.fence_ms=%d" % FENCE_MS,
            "--set", "hashing.memory_kib=64", "--set", "hashing.iterations=1", "--set", "hashing.allow_weak=true",
        ], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        RUNNING.append(self.process)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise SystemExit("moatd %s exited at start:\n%s" % (self.name, open(self.log_path).read()))
            if os.path.exists(self.socket):
                try:
                    connection = Connection(self.socket)
                    status, _ = connection.call("/moat.v1.Health/Check", health_pb2.CheckRequest(),
                                                health_pb2.CheckResponse)
                    connection.close()
                    if status.code == OK:
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise SystemExit("moatd %s did not start:\n%s" % (self.name, open(self.log_path).read()))

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        assert code == 0, "moatd %s exited %d on SIGTERM:\n%s" % (self.name, code, open(self.log_path).read())


def sign_in(connection, email):
    return connection.ok("/moat.v1.Users/SignIn", users_pb2.SignInRequest(email=email, password=PASSWORD),
                         users_pb2.SignInResponse, tenant="cluster")


def warm(connections, token):
    """Validates on every instance twice: the second answer is a cache hit."""
    for connection in connections:
        for _ in range(2):
            status, _ = connection.validate(token)
            assert status.code == OK, (status.code, status.reason)


def refused_everywhere(connections, token, what):
    for connection in connections:
        status, _ = connection.validate(token)
        assert status.code == UNAUTHENTICATED, "%s: still valid on an instance after the call returned (%s)" % (
            what, status.code)


def main():
    root = tempfile.mkdtemp(prefix="moat-cluster.")
    psql("CREATE SCHEMA %s" % SCHEMA)
    checks = 0
    try:
        daemons = [Daemon(root, name) for name in ("a", "b", "c")]
        daemons[0].start()
        for daemon in daemons[1:]:
            os.makedirs(daemon.data_dir, mode=0o750)
            shutil.copy2(os.path.join(daemons[0].data_dir, "master.key"), os.path.join(daemon.data_dir, "master.key"))
            daemon.start()
        a, b, c = [Connection(daemon.socket) for daemon in daemons]
        others = [b, c]
        everyone = [a, b, c]
        created = a.ok("/moat.v1.Tenants/Create", tenants_pb2.CreateTenantRequest(
            slug="cluster", name="Cluster", owner_email="owner@cluster.test", owner_password=PASSWORD),
            tenants_pb2.CreateTenantResponse)
        emails = ["user%d@cluster.test" % index for index in range(6)]
        users = {}
        for email in emails:
            users[email] = a.ok("/moat.v1.Users/Create", users_pb2.CreateUserRequest(email=email, password=PASSWORD),
                                tenants_pb2.User, tenant="cluster")

        # (a) Revocations through A, refused on B and C right after.
        for round_ in range(10):
            signed = sign_in(everyone[round_ % 3], emails[0])
            warm(everyone, signed.session_token)
            a.ok("/moat.v1.Sessions/SignOut", users_pb2.SignOutRequest(), users_pb2.SignOutResponse,
                 tenant="cluster", authorization=signed.session_token)
            refused_everywhere(others, signed.session_token, "SignOut through A")
        holder = sign_in(b, emails[1])
        target = sign_in(c, emails[1])
        warm(everyone, target.session_token)
        a.ok("/moat.v1.Sessions/Revoke", sessions_pb2.RevokeSessionRequest(session_id=target.session.id),
             sessions_pb2.RevokeSessionResponse, tenant="cluster", authorization=holder.session_token)
        refused_everywhere(others, target.session_token, "Revoke through A")
        tokens = [sign_in(everyone[index % 3], emails[2]).session_token for index in range(3)]
        for token in tokens:
            warm(everyone, token)
        a.ok("/moat.v1.Sessions/RevokeAllForUser", sessions_pb2.RevokeAllForUserRequest(user_id=users[emails[2]].id),
             sessions_pb2.RevokeSessionsResponse, tenant="cluster")
        for token in tokens:
            refused_everywhere(others, token, "RevokeAllForUser through A")
        checks += 1
        print("(a) SignOut, Revoke and RevokeAllForUser through A: refused on B and C when the call returns")

        # (b) A user disabled, a policy changed, a tenant scheduled for deletion.
        disabled = sign_in(b, emails[3])
        warm(everyone, disabled.session_token)
        a.ok("/moat.v1.Users/Disable", users_pb2.SetUserEnabledRequest(user_id=users[emails[3]].id), tenants_pb2.User,
             tenant="cluster")
        refused_everywhere(others, disabled.session_token, "Users.Disable through A")
        watched = sign_in(c, emails[4])
        warm(everyone, watched.session_token)
        for connection in everyone:
            assert not connection.validate(watched.session_token)[1].two_factor_setup_required
        a.ok("/moat.v1.Tenants/UpdatePolicy", tenants_pb2.UpdatePolicyRequest(tenant="cluster", require_two_factor=True),
             tenants_pb2.TenantPolicy)
        for connection in others:
            status, reply = connection.validate(watched.session_token)
            assert status.code == OK and reply.two_factor_setup_required, "policy change not seen on another instance"
        a.ok("/moat.v1.Tenants/UpdatePolicy", tenants_pb2.UpdatePolicyRequest(tenant="cluster", require_two_factor=False),
             tenants_pb2.TenantPolicy)
        for connection in others:
            status, reply = connection.validate(watched.session_token)
            assert status.code == OK and not reply.two_factor_setup_required, "policy change back not seen"
        a.ok("/moat.v1.Tenants/RequestDeletion", tenants_pb2.RequestTenantDeletionRequest(
            tenant="cluster", confirmation="DELETE"), tenants_pb2.Tenant)
        refused_everywhere(others, watched.session_token, "Tenants.RequestDeletion through A")
        a.ok("/moat.v1.Tenants/CancelDeletion", tenants_pb2.CancelTenantDeletionRequest(tenant="cluster"),
             tenants_pb2.Tenant)
        checks += 1
        print("(b) Users.Disable, Tenants.UpdatePolicy and Tenants.RequestDeletion through A: seen on B and C at once")

        # (c) B stopped: the call returns within the bound; B refuses at once after SIGCONT.
        durations = []
        for round_ in range(3):
            signed = sign_in(a, emails[5])
            warm(everyone, signed.session_token)
            daemons[1].process.send_signal(signal.SIGSTOP)
            try:
                if round_ == 2:
                    time.sleep(FENCE_MS * 3 / 1000.0)  # long stopped: no longer live
                started = time.monotonic()
                a.ok("/moat.v1.Sessions/SignOut", users_pb2.SignOutRequest(), users_pb2.SignOutResponse,
                     tenant="cluster", authorization=signed.session_token)
                durations.append((time.monotonic() - started) * 1000)
                refused_everywhere([c], signed.session_token, "SignOut with B stopped")
            finally:
                daemons[1].process.send_signal(signal.SIGCONT)
            status, _ = b.validate(signed.session_token)
            assert status.code == UNAUTHENTICATED, "B answered a revoked token from its cache after SIGCONT"
        assert max(durations) <= FENCE_MS + MARGIN_MS, ("revocation with B stopped took too long", durations)
        checks += 1
        print("(c) B stopped: SignOut through A returned in %s ms (bound %d ms); B refused at once after SIGCONT" % (
            ", ".join("%.0f" % d for d in durations), FENCE_MS))

        # (d) Validators on every instance while revocations happen.
        population = [sign_in(everyone[index % 3], emails[index % 2 + 4]).session_token for index in range(24)]
        for token in population:
            warm(everyone, token)
        revoked_at = {}  # token -> monotonic time its revoking call returned
        lock = threading.Lock()
        stop = threading.Event()
        stale = []
        counts = {"validations": 0, "refused": 0}

        def validator(path):
            connection = Connection(path)
            mine = 0
            refused = 0
            try:
                while not stop.is_set():
                    token = random.choice(population)
                    sent = time.monotonic()
                    status, _ = connection.validate(token)
                    mine += 1
                    if status.code != OK:
                        refused += 1
                        continue
                    with lock:
                        returned = revoked_at.get(token)
                    if returned is not None and sent > returned:
                        stale.append((path, token[:6], sent - returned))
            finally:
                connection.close()
                with lock:
                    counts["validations"] += mine
                    counts["refused"] += refused

        threads = [threading.Thread(target=validator, args=(daemon.socket,)) for daemon in daemons for _ in range(2)]
        for thread in threads:
            thread.start()
        revokers = [Connection(daemon.socket) for daemon in daemons]
        for index, token in enumerate(population[:18]):
            time.sleep(0.03)
            revokers[index % 3].ok("/moat.v1.Sessions/SignOut", users_pb2.SignOutRequest(), users_pb2.SignOutResponse,
                                   tenant="cluster", authorization=token)
            with lock:
                revoked_at[token] = time.monotonic()
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join()
        for connection in revokers:
            connection.close()
        assert not stale, ("stale successes after the revoking call returned", stale[:10])
        assert counts["refused"] > 0 and counts["validations"] > 200, counts
        checks += 1
        print("(d) %d validations on 3 instances during 18 revocations: %d refused, 0 stale successes" % (
            counts["validations"], counts["refused"]))

        for connection in everyone:
            connection.close()
        for daemon in daemons:
            daemon.stop()
        remaining = subprocess.run(
            ["psql", "-At", "-X", BASE_URL, "-c", "SELECT count(*) FROM %s.cluster_instances" % SCHEMA],
            capture_output=True, text=True, env=dict(os.environ, PGPASSWORD=open(PASSWORD_FILE).read().strip()),
            check=True).stdout.strip()
        assert remaining == "0", "instances left registered after SIGTERM: %s" % remaining
        checks += 1
        print("SIGTERM: every instance exited 0 and deregistered")
        del created
    finally:
        for process in RUNNING:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait()
        shutil.rmtree(root, ignore_errors=True)
        psql("DROP SCHEMA %s CASCADE" % SCHEMA)
    print("cluster check: %d checks passed" % checks)


if __name__ == "__main__":
    main()
