#!/usr/bin/env python3
"""Calls moat.v1.Health/Check over the socket with no Moat code involved.

The envelope and Health messages are generated from proto/ by protoc for
Python and encoded by Python's protobuf package, framed by hand as the README
describes (4-byte big-endian length, then the Request). Proves the wire is
exactly what proto/ and the README say.

Usage: health_check.py SOCKET GENERATED_DIR
"""
import socket
import struct
import sys

sys.path.insert(0, sys.argv[2])
from moat.rpc.v1 import envelope_pb2  # noqa: E402
from moat.v1 import health_pb2  # noqa: E402


def read_exact(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise SystemExit("connection closed by the daemon")
        data += chunk
    return data


def call(sock, request):
    body = request.SerializeToString()
    sock.sendall(struct.pack(">I", len(body)) + body)
    (length,) = struct.unpack(">I", read_exact(sock, 4))
    response = envelope_pb2.Response()
    response.ParseFromString(read_exact(sock, length))
    return response


def main():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(sys.argv[1])

    request = envelope_pb2.Request(
        id=41, method="/moat.v1.Health/Check", timeout_ms=2000,
        metadata={"request-id": "wire-check"},
        payload=health_pb2.CheckRequest().SerializeToString())
    response = call(sock, request)
    assert response.id == 41, response
    assert response.status.code == envelope_pb2.OK, response.status
    health = health_pb2.CheckResponse()
    health.ParseFromString(response.payload)
    assert health.status == health_pb2.CheckResponse.SERVING, health
    print("health: %s version %s uptime %ss" % (
        health_pb2.CheckResponse.ServingStatus.Name(health.status), health.version, health.uptime_seconds))

    # An unknown method: UNIMPLEMENTED with a stable reason, connection lives.
    response = call(sock, envelope_pb2.Request(id=42, method="/moat.v1.Nope/Nothing"))
    assert response.id == 42 and response.status.code == envelope_pb2.UNIMPLEMENTED, response
    assert response.status.reason == "UNKNOWN_METHOD", response.status
    print("unknown method: %s %s" % (envelope_pb2.Code.Name(response.status.code), response.status.reason))

    # A payload that is not a CheckRequest: INVALID_ARGUMENT.
    response = call(sock, envelope_pb2.Request(id=43, method="/moat.v1.Health/Check", payload=b"\xff\xff\xff"))
    assert response.id == 43 and response.status.code == envelope_pb2.INVALID_ARGUMENT, response
    print("bad payload: %s %s" % (envelope_pb2.Code.Name(response.status.code), response.status.reason))

    # Garbage instead of an envelope: one error with id 0, then the close.
    sock.sendall(struct.pack(">I", 3) + b"\xff\xff\xff")
    (length,) = struct.unpack(">I", read_exact(sock, 4))
    response = envelope_pb2.Response()
    response.ParseFromString(read_exact(sock, length))
    assert response.id == 0 and response.status.reason == "MALFORMED_FRAME", response
    assert sock.recv(1) == b"", "connection closed"
    print("garbage frame: id 0 %s, connection closed" % response.status.reason)
    print("wire check passed")


if __name__ == "__main__":
    main()
