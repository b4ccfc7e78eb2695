#!/usr/bin/env python3
"""Writes the fuzz-grpc seed corpus (fuzz/corpus/grpc/) from real grpcio
connections.

Starts MOATD (cheap BENCHMARK-ONLY hashing, a throwaway data directory),
puts a recording proxy in front of its socket, and makes a few calls with a
stock grpcio client (generic unary calls, messages encoded by Python's
protobuf from protoc's output, the names the fuzz daemon knows: tenant
acme, owner@acme.test, its password), one grpcio channel per scenario. Each
connection's client-to-server bytes, without the 24-byte preface the harness
adds, become one seed: two chunking bytes, the mode byte (raw; admin caller
or not), then the bytes.

Usage: PYTHONPATH=.build-python fuzz/grpc_seeds.py MOATD
(grpcio from scripts/setup's .build-python).
"""
import hashlib
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc

repo = pathlib.Path(__file__).resolve().parent.parent
corpus = repo / "fuzz" / "corpus" / "grpc"
moatd = sys.argv[1]
work = tempfile.mkdtemp(prefix="moat-grpc-seeds-")
generated = os.path.join(work, "py")
os.makedirs(generated)
protos = sorted(str(p.relative_to(repo / "proto")) for p in (repo / "proto").rglob("*.proto"))
sys.path.insert(0, str(repo / "fuzz"))
import wkt  # noqa: E402

subprocess.run(["protoc", "-I", str(repo / "proto"), f"-I{wkt.include_dir()}", "--python_out", generated, *protos],
               check=True)
sys.path.insert(0, generated)
from moat.v1 import sessions_pb2, tenants_pb2, users_pb2  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
daemon_socket = os.path.join(work, "moat.sock")
proxy_socket = os.path.join(work, "proxy.sock")
daemon = subprocess.Popen([moatd, "--data-dir", os.path.join(work, "data"), "--socket", daemon_socket,
                           "--log-level", "warning", "--set", "hashing.memory_kib=8", "--set", "hashing.iterations=1", "--set", "hashing.allow_weak=true"])
for _ in range(600):
    if os.path.exists(daemon_socket):
        break
    if daemon.poll() is not None:
        sys.exit(f"moatd exited with {daemon.returncode}")
    time.sleep(0.1)
else:
    sys.exit("moatd did not create its socket")

captures = []
lock = threading.Lock()


def pump(source, target, record):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            if record is not None:
                record.append(data)
            target.sendall(data)
    except OSError:
        pass
    finally:
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def proxy():
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(proxy_socket)
    listener.listen(16)
    while True:
        client, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(daemon_socket)
        record = []
        with lock:
            captures.append(record)
        threading.Thread(target=pump, args=(client, upstream, record), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, None), daemon=True).start()


threading.Thread(target=proxy, daemon=True).start()
time.sleep(0.2)

PASSWORD = "fuzz-owner-pass-4471"


def scenario(calls):
    """Runs calls on a fresh channel and returns the connection's bytes."""
    before = len(captures)
    channel = grpc.insecure_channel("unix:" + proxy_socket)
    for path, message, metadata in calls:
        try:
            channel.unary_unary(path)(message.SerializeToString() if hasattr(message, "SerializeToString")
                                      else message, metadata=metadata, timeout=5)
        except grpc.RpcError:
            pass
    channel.close()
    time.sleep(0.3)
    with lock:
        return [b"".join(record) for record in captures[before:]]


tenant = [("moat-tenant", "acme")]
seeds = [
    (2, [("/grpc.health.v1.Health/Check", b"", None)]),
    (2, [("/moat.v1.Tenants/Create", tenants_pb2.CreateTenantRequest(
        slug="acme", name="Acme", owner_email="owner@acme.test", owner_password=PASSWORD), None)]),
    (0, [("/moat.v1.Users/SignIn", users_pb2.SignInRequest(email="owner@acme.test", password=PASSWORD),
          tenant + [("moat-client-ip", "192.0.2.7"), ("moat-request-id", "seed-1"),
                    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0")])]),
    (0, [("/moat.v1.Sessions/Validate", sessions_pb2.ValidateRequest(token="not-a-token"), tenant),
         ("/moat.v1.Sessions/List", sessions_pb2.ListSessionsRequest(),
          tenant + [("authorization", "Bearer not-a-token")])]),
    (0, [("/moat.v1.Sessions/Validate", b"\xff\xff\xff", tenant),
         ("/moat.v1.Nope/Nothing", b"", None)]),
    (2, [("/moat.v1.Users/SignIn", users_pb2.SignInRequest(email="owner@acme.test", password="wrong"),
          tenant)] * 3),
]
corpus.mkdir(parents=True, exist_ok=True)
written = 0
try:
    for mode, calls in seeds:
        for stream in scenario(calls):
            if not stream.startswith(PREFACE):
                continue
            for chunking in (b"\x00\x01", b"\x00\x03"):
                data = chunking + bytes([mode]) + stream[len(PREFACE):]
                (corpus / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)
                written += 1
finally:
    daemon.terminate()
    daemon.wait()
print(f"{written} grpc seeds in {corpus}")
