#!/usr/bin/env python3
"""Writes the fuzz seed corpora (fuzz/corpus/<target>/) from proto/.

Requests are real messages, encoded by Python's protobuf from protoc's
output (no Moat code involved), with the values the in-memory daemon of
fuzz-requests knows (emails, password, slugs), so the fuzzer starts from
calls that reach the domain. Usage: fuzz/seeds.py (from anywhere).
"""
import hashlib
import os
import pathlib
import struct
import subprocess
import sys
import tempfile

repo = pathlib.Path(__file__).resolve().parent.parent
corpus = repo / "fuzz" / "corpus"
generated = tempfile.mkdtemp(prefix="moat-seeds-")
protos = sorted(str(p.relative_to(repo / "proto")) for p in (repo / "proto").rglob("*.proto"))
sys.path.insert(0, str(repo / "fuzz"))
import wkt  # noqa: E402

subprocess.run(["protoc", "-I", str(repo / "proto"), f"-I{wkt.include_dir()}", "--python_out", generated, *protos], check=True)
sys.path.insert(0, generated)

import importlib  # noqa: E402

# Moat's own services only: grpc/ (standard Health and reflection, served over
# gRPC) would also clash with grpcio's `grpc` package when that is installed.
modules = [importlib.import_module(p[:-6].replace("/", ".") + "_pb2") for p in protos if p.startswith("moat/")]
from moat.rpc.v1 import envelope_pb2  # noqa: E402
from google.protobuf import message_factory  # noqa: E402

VALUES = {
    "email": "owner@acme.test", "password": "fuzz-owner-pass-4471", "current_password": "fuzz-owner-pass-4471",
    "new_password": "a-new-fuzz-pass-8812", "slug": "acme", "name": "Acme", "owner_email": "owner@acme.test",
    "owner_password": "fuzz-owner-pass-4471", "consumer": "fuzz", "confirmation": "DELETE", "code": "123456",
    "role": "member", "action": "read", "type_prefix": "session.", "user_agent": "Mozilla/5.0 (Macintosh) Safari/605",
    "ip": "192.0.2.7", "location": "Lisbon, PT",
}

methods = []
for module in modules:
    for service in module.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            methods.append((f"/{service.full_name}/{method.name}", method.input_type))
methods.sort(key=lambda m: m[0])


def repeated(field):
    # protobuf 5+ has is_repeated; older ones only label.
    if hasattr(field, "is_repeated"):
        return field.is_repeated
    return field.label == field.LABEL_REPEATED


def filled(descriptor, depth=0):
    message = message_factory.GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if field.message_type is not None and depth < 2 and not field.message_type.GetOptions().map_entry:
            if not repeated(field):
                getattr(message, field.name).CopyFrom(filled(field.message_type, depth + 1))
        elif field.type == field.TYPE_STRING and field.name in VALUES and not repeated(field):
            setattr(message, field.name, VALUES[field.name])
    return message


def write(target, data):
    folder = corpus / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


frames = []
for index, (path, input_type) in enumerate(methods):
    payload = filled(input_type).SerializeToString()
    # fuzz-requests: method, tenant (acme), authorization (none / owner), flags (admin, client-ip, user-agent).
    for auth, flags in ((0, 1), (1, 6)):
        header = bytes([index, 0, auth, flags])
        extra = b""
        if flags & 2:
            extra += bytes([9]) + b"192.0.2.9"
        if flags & 4:
            agent = VALUES["user_agent"].encode()
            extra += bytes([len(agent)]) + agent
        write("requests", header + extra + payload)
    request = envelope_pb2.Request(id=index + 1, method=path, tenant="acme", timeout_ms=1000, payload=payload)
    request.metadata["client-ip"] = "192.0.2.7"
    frames.append(request.SerializeToString())

# fuzz-frames: two seed bytes (chunking), then frames as the e2e clients send them.
stream = b"".join(struct.pack(">I", len(f)) + f for f in frames[:6])
write("frames", b"\x00\x03" + stream)
write("frames", b"\x00\x04" + stream[:-3])
for frame in frames[6:12]:
    write("frames", b"\x01\x01" + struct.pack(">I", len(frame)) + frame)

write("config", (repo / "deploy" / "moatd.toml").read_bytes())
write("config", b"limits.max_connections=64\nlog.level=debug\naccounts.address_failure_limit=0\n")
write("config", b'[socket]\npath = "/run/moat.sock"\nmode = "0660"\n[access]\nallow_uids = [1000, 1001]\n')

for agent in [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    "Slack/23.10.0 CFNetwork/1474 Darwin/23.0.0",
    "curl/8.5.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]:
    write("user-agent", agent.encode())
print(f"{len(methods)} methods; corpora in {corpus}")
