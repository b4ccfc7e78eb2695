#!/usr/bin/env python3
"""The event stream across a crash: at-least-once, nothing acknowledged twice.

Starts the real moatd on a fresh data directory. A writer keeps creating
users (each Users.Create commits a user.created event with the change); a
consumer long-polls moat.v1.Events and acknowledges after recording what it
received. Mid-stream the daemon is killed with SIGKILL and started again on
the same directory; both clients reconnect and go on. At the end:

  - every user whose Create returned OK has its user.created event delivered
    (at least once);
  - no event is delivered for a Create that returned an error, and none for
    an email never attempted (a Create in flight at the kill may go either
    way: its outcome is unknown to the caller);
  - no event at or below an Ack that returned OK is ever delivered again (an
    event may come again only if its Ack had not returned);
  - sequences are delivered in increasing order (ignoring redeliveries);
  - SIGTERM with a long poll waiting shuts the daemon down promptly (the
    poll is woken, the drain is not held up) and it exits 0.

Messages are generated from proto/ by protoc for Python (no Moat code).

Usage: event_stream_restart.py MOATD GENERATED_DIR
"""
import os
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
from moat.v1 import events_pb2, tenants_pb2, users_pb2  # noqa: E402

MOATD = sys.argv[1]
CONSUMER = "restart-check"
PASSWORD = "restart-pass-4471-ok"


class Dropped(Exception):
    """The connection failed: the call's outcome is unknown."""


class Connection:
    """One socket, one call at a time."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        try:
            self.sock.connect(path)
        except OSError as error:
            self.sock.close()
            raise Dropped(str(error))
        self.next_id = 1

    def close(self):
        self.sock.close()

    def _read(self, count):
        data = b""
        while len(data) < count:
            try:
                chunk = self.sock.recv(count - len(data))
            except OSError as error:
                raise Dropped(str(error))
            if not chunk:
                raise Dropped("closed by the daemon")
            data += chunk
        return data

    def call(self, method, message, reply_type, tenant="", timeout_ms=5000):
        request = envelope_pb2.Request(
            id=self.next_id, method=method, tenant=tenant, timeout_ms=timeout_ms,
            payload=message.SerializeToString())
        self.next_id += 1
        body = request.SerializeToString()
        try:
            self.sock.sendall(struct.pack(">I", len(body)) + body)
        except OSError as error:
            raise Dropped(str(error))
        (length,) = struct.unpack(">I", self._read(4))
        response = envelope_pb2.Response()
        response.ParseFromString(self._read(length))
        assert response.id == request.id, (response.id, request.id)
        reply = reply_type()
        if response.status.code == envelope_pb2.OK:
            reply.ParseFromString(response.payload)
        return response.status, reply


class Daemon:
    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.socket = os.path.join(data_dir, "moat.sock")
        self.process = None
        self.log = open(os.path.join(os.path.dirname(data_dir), "moatd.log"), "ab")

    def start(self):
        self.process = subprocess.Popen(
            [MOATD, "--data-dir", self.data_dir, "--log-level", "warning",
             "--set", "hashing.memory_kib=64", "--set", "hashing.iterations=1", "--set", "hashing.allow_weak=true",
             "--set", "events.max_poll_wait_seconds=30"],
            stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.process.poll() is None, "moatd exited at start (see moatd.log)"
            try:
                Connection(self.socket).close()
                return
            except Dropped:
                time.sleep(0.05)
        raise SystemExit("moatd did not start listening")

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self, timeout):
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def reconnect(daemon, stop):
    while not stop.is_set():
        try:
            return Connection(daemon.socket)
        except Dropped:
            time.sleep(0.05)
    return None


class Worker(threading.Thread):
    """A thread whose unexpected exception fails the check (see wait_until)."""

    crashed = []

    def run(self):
        try:
            self.work()
        except BaseException as error:  # noqa: B902 - reported, then the check fails
            Worker.crashed.append("%s: %r" % (type(self).__name__, error))
            raise


class Writer(Worker):
    """Creates users one after another; records each outcome."""

    def __init__(self, daemon, tenant):
        super().__init__(daemon=True)
        self.daemon_ = daemon
        self.tenant = tenant
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.outcomes = {}  # email -> "ok" | "error" | "unknown"
        self.ok_count = 0

    def work(self):
        conn = reconnect(self.daemon_, self.stop)
        index = 0
        while not self.stop.is_set() and conn:
            index += 1
            email = "user%05d@acme.test" % index
            with self.lock:
                self.outcomes[email] = "unknown"
            try:
                status, _ = conn.call(
                    "/moat.v1.Users/Create", users_pb2.CreateUserRequest(email=email, password=PASSWORD),
                    tenants_pb2.User, tenant=self.tenant)
                with self.lock:
                    if status.code == envelope_pb2.OK:
                        self.outcomes[email] = "ok"
                        self.ok_count += 1
                    else:
                        self.outcomes[email] = "error"
                # A call that must fail: the same email again (no event).
                if index % 7 == 0:
                    status, _ = conn.call(
                        "/moat.v1.Users/Create", users_pb2.CreateUserRequest(email=email, password=PASSWORD),
                        tenants_pb2.User, tenant=self.tenant)
                    assert status.code != envelope_pb2.OK, "duplicate email accepted"
            except Dropped:
                conn.close()
                conn = reconnect(self.daemon_, self.stop)
        if conn:
            conn.close()


class Consumer(Worker):
    """Polls, records, then acks; checks nothing acked comes back."""

    def __init__(self, daemon):
        super().__init__(daemon=True)
        self.daemon_ = daemon
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.delivered = {}  # sequence -> (type, email, times delivered)
        self.confirmed_ack = 0  # highest Ack that returned OK
        self.highest_seen = 0
        self.order_violations = []
        self.redelivered_acked = []
        self.redeliveries = 0
        self.empty_polls_in_a_row = 0
        self.errors = []

    def work(self):
        conn = reconnect(self.daemon_, self.stop)
        while not self.stop.is_set() and conn:
            try:
                status, batch = conn.call(
                    "/moat.v1.Events/Poll",
                    events_pb2.PollRequest(consumer=CONSUMER, max_events=50, wait_ms=1000),
                    events_pb2.PollResponse, timeout_ms=5000)
                if status.code != envelope_pb2.OK:
                    self.errors.append("poll: %s %s" % (status.code, status.reason))
                    time.sleep(0.05)
                    continue
                with self.lock:
                    self._record(batch)
                if batch.last_sequence_scanned > batch.cursor:
                    status, reply = conn.call(
                        "/moat.v1.Events/Ack",
                        events_pb2.AckRequest(consumer=CONSUMER, sequence=batch.last_sequence_scanned),
                        events_pb2.AckResponse)
                    if status.code != envelope_pb2.OK:
                        self.errors.append("ack: %s %s" % (status.code, status.reason))
                        continue
                    with self.lock:
                        self.confirmed_ack = max(self.confirmed_ack, reply.cursor)
            except Dropped:
                conn.close()
                conn = reconnect(self.daemon_, self.stop)
        if conn:
            conn.close()

    def _record(self, batch):
        if batch.cursor < self.confirmed_ack:
            self.redelivered_acked.append("cursor %d went below confirmed ack %d" % (batch.cursor, self.confirmed_ack))
        previous = 0
        for event in batch.events:
            if event.sequence <= previous:
                self.order_violations.append((previous, event.sequence))
            previous = event.sequence
            if event.sequence <= self.confirmed_ack:
                self.redelivered_acked.append(event.sequence)
            if event.sequence in self.delivered:
                kind, email, times = self.delivered[event.sequence]
                self.delivered[event.sequence] = (kind, email, times + 1)
                self.redeliveries += 1
                continue
            if event.sequence < self.highest_seen:
                self.order_violations.append((self.highest_seen, event.sequence))
            self.highest_seen = max(self.highest_seen, event.sequence)
            email = None
            if event.type == "user.created":
                assert event.payload_type == "moat.v1.UserCreated", event.payload_type
                payload = events_pb2.UserCreated()
                payload.ParseFromString(event.payload)
                assert payload.user_id == event.subject, (payload.user_id, event.subject)
                email = payload.email
            self.delivered[event.sequence] = (event.type, email, 1)
        self.empty_polls_in_a_row = 0 if batch.events else self.empty_polls_in_a_row + 1

    def user_created(self):
        with self.lock:
            return sum(1 for kind, _, _ in self.delivered.values() if kind == "user.created")


def wait_until(condition, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if Worker.crashed:
            raise SystemExit("a client thread failed: %s" % Worker.crashed)
        if condition():
            return
        time.sleep(0.02)
    raise SystemExit("timed out waiting for " + what)


def main():
    work = tempfile.mkdtemp(prefix="moat-events-restart.")
    daemon = Daemon(os.path.join(work, "data"))
    try:
        daemon.start()
        admin = Connection(daemon.socket)
        status, created = admin.call(
            "/moat.v1.Tenants/Create",
            tenants_pb2.CreateTenantRequest(slug="acme", name="Acme", owner_email="owner@acme.test",
                                            owner_password=PASSWORD),
            tenants_pb2.CreateTenantResponse)
        assert status.code == envelope_pb2.OK, status
        admin.close()
        tenant = created.tenant.id

        consumer = Consumer(daemon)
        writer = Writer(daemon, tenant)
        consumer.start()
        writer.start()

        wait_until(lambda: consumer.user_created() >= 40, 60, "40 delivered events before the kill")
        before_kill = writer.ok_count
        daemon.kill()
        killed_at = time.time()
        time.sleep(0.3)
        daemon.start()
        print("killed moatd with SIGKILL after %d OK creates; restarted in %.1fs" % (
            before_kill, time.time() - killed_at))

        wait_until(lambda: writer.ok_count >= before_kill + 40, 60, "40 more creates after the restart")
        writer.stop.set()
        writer.join(30)
        assert not writer.is_alive(), "writer stuck"

        # Let the consumer drain everything, then stop it.
        with writer.lock:
            expected = {email for email, outcome in writer.outcomes.items() if outcome == "ok"}
            failed = {email for email, outcome in writer.outcomes.items() if outcome == "error"}
            unknown = {email for email, outcome in writer.outcomes.items() if outcome == "unknown"}

        def delivered_emails():
            with consumer.lock:
                return {email for kind, email, _ in consumer.delivered.values() if kind == "user.created"}

        wait_until(lambda: expected <= delivered_emails() and consumer.empty_polls_in_a_row >= 1, 60,
                   "every OK create's event")
        consumer.stop.set()
        consumer.join(30)

        # SIGTERM while a long poll waits: the drain must not wait for it.
        waiting = Connection(daemon.socket)
        poller = threading.Thread(target=lambda: waiting.call(
            "/moat.v1.Events/Poll", events_pb2.PollRequest(consumer=CONSUMER, wait_ms=25000),
            events_pb2.PollResponse, timeout_ms=30000), daemon=True)
        poller.start()
        time.sleep(0.5)
        started = time.time()
        code = daemon.terminate(timeout=20)
        shutdown_seconds = time.time() - started
        poller.join(5)
        waiting.close()

        delivered = delivered_emails()
        missing = expected - delivered
        phantom = {email for email in delivered if email is not None and email not in expected | unknown
                   and email != "owner@acme.test"}
        phantom |= delivered & failed
        print("creates: %d OK, %d failed, %d unknown (in flight at the kill)" % (
            len(expected), len(failed), len(unknown)))
        print("delivered: %d events, %d user.created, %d redelivered (ack not returned before the kill)" % (
            len(consumer.delivered), len(delivered), consumer.redeliveries))
        print("SIGTERM with a waiting long poll: exit %d after %.2fs" % (code, shutdown_seconds))
        assert not Worker.crashed, Worker.crashed
        assert not consumer.errors, consumer.errors
        assert not missing, "OK creates whose event never came: %s" % sorted(missing)[:10]
        assert not phantom, "events for creates that did not happen: %s" % sorted(phantom)[:10]
        assert not consumer.redelivered_acked, "acknowledged events delivered again: %s" % consumer.redelivered_acked[:10]
        assert not consumer.order_violations, "out of order: %s" % consumer.order_violations[:10]
        assert code == 0, "moatd exited %d on SIGTERM" % code
        assert shutdown_seconds < 10, "shutdown took %.1fs: the waiting poll held up the drain" % shutdown_seconds
        print("event stream restart check passed")
    finally:
        if daemon.process and daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
