"""Small shared pieces for the operations checks (Tests/wire/ops_*.py).

A raw Moat client (framing + envelope from protoc's Python output, no Moat
code) and a moatd process on a scratch data directory.
"""
import os
import signal
import socket
import struct
import subprocess
import time

envelope_pb2 = None


def load(generated_dir):
    """Imports the generated messages from GENERATED_DIR."""
    import sys
    sys.path.insert(0, generated_dir)
    global envelope_pb2
    from moat.rpc.v1 import envelope_pb2 as envelope  # noqa: E402
    envelope_pb2 = envelope


# Cheap hashing: these checks are about operations, not Argon2 cost.
WEAK_HASHING = ["--set", "hashing.memory_kib=64", "--set", "hashing.iterations=1",
                "--set", "hashing.allow_weak=true"]


class Dropped(Exception):
    """The connection failed: the call's outcome is unknown."""


class CallFailed(Exception):
    def __init__(self, status):
        super().__init__(f"{status.code} {status.reason}: {status.message}")
        self.status = status


class Connection:
    """One socket, one call at a time."""

    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
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

    def call(self, method, message, reply_type, tenant="", authorization="", timeout_ms=10000):
        """Returns (status, reply)."""
        request = envelope_pb2.Request(
            id=self.next_id, method=method, tenant=tenant, timeout_ms=timeout_ms,
            authorization=authorization, payload=message.SerializeToString())
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

    def ok(self, method, message, reply_type, **kwargs):
        """Calls and returns the reply; raises CallFailed unless OK."""
        status, reply = self.call(method, message, reply_type, **kwargs)
        if status.code != envelope_pb2.OK:
            raise CallFailed(status)
        return reply


class Daemon:
    """moatd on DATA_DIR, started and stopped by the check."""

    def __init__(self, moatd, data_dir, args=(), log_path=None):
        self.moatd = moatd
        self.data_dir = data_dir
        self.socket = os.path.join(data_dir, "moat.sock")
        self.args = list(args)
        self.process = None
        self.log_path = log_path or (data_dir.rstrip("/") + ".log")

    def start(self, extra=(), wait=True, env=None):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [self.moatd, "--data-dir", self.data_dir, "--log-level", "info"] + WEAK_HASHING + self.args + list(extra),
            stdout=log, stderr=log, env=env)
        log.close()
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, seconds=60):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"moatd exited at start with {self.process.returncode}:\n{self.log()}")
            try:
                Connection(self.socket).close()
                return
            except Dropped:
                time.sleep(0.05)
        raise SystemExit("moatd did not start listening")

    def log(self):
        with open(self.log_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def terminate(self, timeout=60):
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def run(argv, **kwargs):
    """Runs a command; returns CompletedProcess with text output."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)
