#!/usr/bin/env python3
"""Moat over standard gRPC, with a stock client and no Moat code.

Generates Python stubs from proto/ with grpc_tools.protoc (the messages, the
gRPC stubs, google.rpc.Status/ErrorInfo), then talks to a live moatd over
`unix:<socket>`, the same socket the native framing uses:

  - grpc.health.v1 Check is SERVING (and Watch is UNIMPLEMENTED);
  - server reflection with the stock client of grpcio-reflection
    (ProtoReflectionDescriptorDatabase, grpc.reflection.v1alpha): list the
    services, load sessions.proto into a DescriptorPool from the server
    alone and call Sessions.Validate with message classes built from it;
    and grpc.reflection.v1 with stubs generated from proto/: several
    requests on one stream answered in order, imports sent once,
    NOT_FOUND for unknown files, symbols and extensions, the extension
    numbers of a message, INVALID_ARGUMENT for an empty request; the
    served files equal grpc_tools.protoc's compilation of proto/, and the
    v1 and v1alpha messages equal grpcio-reflection's field for field;
  - as an administrator caller: create a tenant; sign in with metadata
    (moat-tenant, moat-client-ip, moat-request-id); Validate; List sessions
    with `authorization: Bearer`; revoke a session; Validate of it refused
    with UNAUTHENTICATED and reason SESSION_INVALID read from the
    google.rpc.ErrorInfo in grpc-status-details-bin (domain "moat") and from
    the moat-reason trailer;
  - 2FA enrolment and sign-in with TOTP codes computed here (RFC 6238,
    hmac/hashlib);
  - deadlines: grpc-timeout reaches the handler (a long Poll ends at the
    call's deadline, long before its wait) and a call that cannot finish in
    time is DEADLINE_EXCEEDED;
  - an unknown method is UNIMPLEMENTED, an undecodable payload
    INVALID_ARGUMENT (INVALID_PAYLOAD), a user method without a token
    UNAUTHENTICATED (SESSION_REQUIRED);
  - an event Poll with a long wait, woken by a write on another channel;
  - 200 concurrent calls on one channel;
  - hostile peers on raw sockets (garbage after the preface, random bytes
    after a valid preface, a HEADERS flood, oversized headers, a client that
    never reads): after each, the daemon still answers a gRPC and a native
    client.

Usage: grpc_check.py SOCKET PROTO_DIR WORK_DIR
"""
import base64
import hashlib
import hmac
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2 as stock_reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

SOCKET, PROTO_DIR, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
OUT = os.path.join(WORK, "grpc-py")
os.makedirs(OUT, exist_ok=True)
protos = []
for folder, _, files in os.walk(PROTO_DIR):
    protos += [os.path.relpath(os.path.join(folder, f), PROTO_DIR) for f in files if f.endswith(".proto")]
subprocess.run(
    [sys.executable, "-m", "grpc_tools.protoc", "-I", PROTO_DIR, "--python_out=" + OUT, "--grpc_python_out=" + OUT]
    + sorted(protos), check=True)
sys.path.insert(0, OUT)
# proto/grpc/health/v1 generates the Python package grpc.health.v1, inside
# the name of grpcio's own package: let that package find it.
grpc.__path__.append(os.path.join(OUT, "grpc"))
# grpcio makes grpc.reflection an alias of grpcio-reflection's package
# (v1alpha only): proto/grpc/reflection/v1 is found beside it.
sys.modules["grpc.reflection"].__path__.append(os.path.join(OUT, "grpc", "reflection"))

from google.rpc import error_details_pb2, status_pb2  # noqa: E402
from grpc.health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc.reflection.v1 import reflection_pb2, reflection_pb2_grpc  # noqa: E402
from moat.rpc.v1 import envelope_pb2  # noqa: E402
from moat.v1 import (  # noqa: E402
    events_pb2, events_pb2_grpc, health_pb2 as moat_health_pb2, sessions_pb2, sessions_pb2_grpc, tenants_pb2,
    tenants_pb2_grpc, two_factor_pb2, two_factor_pb2_grpc, users_pb2, users_pb2_grpc)

TARGET = "unix:" + SOCKET
TENANT = "grpc-wire"
EMAIL = "grace@example.com"
PASSWORD = "correct horse battery staple"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"
checks = 0


def ok(what):
    global checks
    checks += 1
    print("ok %d - %s" % (checks, what))


def channel():
    return grpc.insecure_channel(TARGET, options=[("grpc.primary_user_agent", USER_AGENT)])


def md(token=None, tenant=TENANT, **extra):
    items = [("moat-tenant", tenant)] if tenant else []
    if token:
        items.append(("authorization", "Bearer " + token))
    items += [(k.replace("_", "-"), v) for k, v in extra.items()]
    return items


def error_info(error):
    """(reason, domain, metadata) from grpc-status-details-bin, and moat-reason."""
    trailers = dict(error.trailing_metadata() or ())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == error.code().value[0], (status, error.code())
    assert status.message == error.details(), (status.message, error.details())
    assert len(status.details) == 1, status
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info), status.details[0]
    return info, trailers.get("moat-reason")


def expect_error(call, code, reason=None):
    try:
        call()
    except grpc.RpcError as error:
        assert error.code() == code, (error.code(), error.details())
        if reason is not None:
            info, plain = error_info(error)
            assert info.reason == reason and info.domain == "moat" and plain == reason, (info, plain)
        return error
    raise AssertionError("expected %s" % code)


def totp(secret_b32, at):
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1000000)


# --- raw peers ---------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack(headers):
    """Literal header fields without indexing, no Huffman."""
    out = b""
    for name, value in headers:
        name, value = name.encode(), value.encode()
        out += b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value
    return out


def grpc_headers(path, extra=()):
    return [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
            ("content-type", "application/grpc"), ("te", "trailers")] + list(extra)


def raw_connect():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(SOCKET)
    return sock


def closed_by_daemon(sock, limit=10):
    """Reads until the daemon closes the connection; True if it did."""
    sock.settimeout(limit)
    try:
        while sock.recv(65536):
            pass
        return True
    except socket.timeout:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def native_health():
    sock = raw_connect()
    request = envelope_pb2.Request(id=1, method="/moat.v1.Health/Check", timeout_ms=5000,
                                   payload=moat_health_pb2.CheckRequest().SerializeToString())
    body = request.SerializeToString()
    sock.sendall(struct.pack(">I", len(body)) + body)
    data = b""
    while len(data) < 4:
        data += sock.recv(4 - len(data))
    (length,) = struct.unpack(">I", data)
    data = b""
    while len(data) < length:
        chunk = sock.recv(length - len(data))
        assert chunk, "native connection closed"
        data += chunk
    sock.close()
    response = envelope_pb2.Response.FromString(data)
    assert response.id == 1 and response.status.code == envelope_pb2.OK, response
    return moat_health_pb2.CheckResponse.FromString(response.payload).status


def still_serving(after):
    with channel() as fresh:
        status = health_pb2_grpc.HealthStub(fresh).Check(health_pb2.HealthCheckRequest(), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING, status
    assert native_health() == moat_health_pb2.CheckResponse.SERVING
    ok("still serving gRPC and native clients after %s" % after)


def reflection_checks(ch, token, session_id):
    """Server reflection, from a client that has none of Moat's protos."""
    with channel() as fresh:
        stock = ProtoReflectionDescriptorDatabase(fresh)
        services = set(stock.get_services())
        assert {"moat.v1.Sessions", "moat.v1.Users", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection"} <= services, services
        assert all(s.startswith(("moat.", "grpc.")) for s in services), services
        pool = descriptor_pool.DescriptorPool(stock)
        validate = pool.FindServiceByName("moat.v1.Sessions").FindMethodByName("Validate")
        request_class = message_factory.GetMessageClass(validate.input_type)
        response_class = message_factory.GetMessageClass(validate.output_type)
        call = fresh.unary_unary("/moat.v1.Sessions/Validate", request_serializer=request_class.SerializeToString,
                                 response_deserializer=response_class.FromString)
        answer = call(request_class(token=token), metadata=md(), timeout=10)
        assert answer.session_id == session_id, answer
        assert stock.FindFileByName("moat/v1/tenants.proto").package == "moat.v1"
        assert stock.FindFileContainingSymbol("grpc.health.v1.HealthCheckResponse.SERVING").name == \
            "grpc/health/v1/health.proto"
        try:
            stock.FindFileContainingSymbol("moat.v1.NoSuchMessage")
            raise AssertionError("an unknown symbol was found")
        except KeyError:
            pass
    ok("reflection (grpcio-reflection's stock v1alpha client): %d services listed; Sessions.Validate called with "
       "message classes built from the served descriptors" % len(services))

    # grpc.reflection.v1: one stream, several requests, answered in order.
    def ask(**field):
        return reflection_pb2.ServerReflectionRequest(**field)
    requests = [
        ask(list_services=""),
        ask(file_by_filename="google/rpc/status.proto"),
        ask(file_by_filename="google/rpc/status.proto"),
        ask(file_containing_symbol="moat.v1.Users.SignIn"),
        ask(file_containing_symbol="moat.v1.SignInRequest.password"),
        ask(file_by_filename="moat/v1/nope.proto"),
        ask(file_containing_extension=reflection_pb2.ExtensionRequest(containing_type="moat.v1.ValidateRequest",
                                                                      extension_number=1000)),
        ask(all_extension_numbers_of_type="moat.v1.ValidateRequest"),
        ask(all_extension_numbers_of_type="moat.v1.Nope"),
        ask(host="localhost"),
    ]
    stub = reflection_pb2_grpc.ServerReflectionStub(ch)
    answers = list(stub.ServerReflectionInfo(iter(requests), timeout=10))
    assert [a.original_request for a in answers] == requests, answers
    names = lambda a: [descriptor_pb2.FileDescriptorProto.FromString(b).name
                       for b in a.file_descriptor_response.file_descriptor_proto]
    assert set(s.name for s in answers[0].list_services_response.service) == services
    assert names(answers[1]) == ["google/rpc/status.proto", "google/protobuf/any.proto"], names(answers[1])
    assert names(answers[2]) == ["google/rpc/status.proto"], names(answers[2])
    assert names(answers[3])[0] == "moat/v1/users.proto", names(answers[3])
    assert names(answers[4]) == ["moat/v1/users.proto"], names(answers[4])
    not_found = grpc.StatusCode.NOT_FOUND.value[0]
    for index in (5, 6, 8):
        assert answers[index].WhichOneof("message_response") == "error_response", answers[index]
        assert answers[index].error_response.error_code == not_found, answers[index]
    numbers = answers[7].all_extension_numbers_response
    assert numbers.base_type_name == "moat.v1.ValidateRequest" and list(numbers.extension_number) == [], numbers
    assert answers[9].error_response.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0], answers[9]
    assert answers[9].valid_host == "localhost", answers[9]
    ok("reflection v1: %d requests on one stream answered in order; imports sent once; NOT_FOUND for unknown files, "
       "symbols, extensions; an empty request INVALID_ARGUMENT" % len(requests))

    # The served schema is proto/ as grpc_tools.protoc compiles it, and the
    # reflection messages are the standard ones.
    compiled_path = os.path.join(WORK, "proto.pb")
    files = sorted(os.path.relpath(os.path.join(folder, f), PROTO_DIR)
                   for folder, _, names_ in os.walk(PROTO_DIR) for f in names_ if f.endswith(".proto"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", PROTO_DIR, "--include_imports",
                    "--descriptor_set_out=" + compiled_path] + files, check=True)
    compiled = {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(open(compiled_path, "rb").read()).file}
    served = {}
    for answer in stub.ServerReflectionInfo(iter([ask(file_by_filename=f) for f in files]), timeout=10):
        for data in answer.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(data)
            served[proto.name] = proto
    for name in files:
        mine = served[name]
        assert mine.HasField("source_code_info") and mine.source_code_info.location, name
        mine.ClearField("source_code_info")
        assert mine == compiled[name], (name, mine, compiled[name])
    stock_file = descriptor_pb2.FileDescriptorProto()
    stock_reflection_pb2.DESCRIPTOR.CopyToProto(stock_file)
    for ours in ("grpc/reflection/v1alpha/reflection.proto", "grpc/reflection/v1/reflection.proto"):
        package = served[ours].package
        fields = lambda f, pkg: [(m.name, [(x.name, x.number, x.type, x.label, x.type_name.replace(pkg, "P"),
                                            x.HasField("oneof_index")) for x in m.field]) for m in f.message_type]
        assert fields(served[ours], package) == fields(stock_file, stock_file.package), ours
        assert [(s.name, [(m.name, m.client_streaming, m.server_streaming) for m in s.method])
                for s in served[ours].service] == [("ServerReflection", [("ServerReflectionInfo", True, True)])]
    ok("reflection serves %d files equal to grpc_tools.protoc's compilation of proto/ (comments included); its "
       "v1 and v1alpha messages match grpcio-reflection's" % len(files))


def main():
    ch = channel()
    health = health_pb2_grpc.HealthStub(ch)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
    assert health.Check(health_pb2.HealthCheckRequest(service="moat.v1.Sessions"), timeout=10).status == \
        health_pb2.HealthCheckResponse.SERVING
    expect_error(lambda: health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10),
                 grpc.StatusCode.NOT_FOUND, "SERVICE_NOT_FOUND")
    ok("grpc.health.v1 Check: SERVING; an unknown service is NOT_FOUND")
    watch = ch.unary_stream("/grpc.health.v1.Health/Watch", request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                            response_deserializer=health_pb2.HealthCheckResponse.FromString)
    expect_error(lambda: list(watch(health_pb2.HealthCheckRequest(), timeout=10)), grpc.StatusCode.UNIMPLEMENTED,
                 "UNKNOWN_METHOD")
    ok("grpc.health.v1 Watch: UNIMPLEMENTED")

    tenants = tenants_pb2_grpc.TenantsStub(ch)
    users = users_pb2_grpc.UsersStub(ch)
    sessions = sessions_pb2_grpc.SessionsStub(ch)
    created = tenants.Create(tenants_pb2.CreateTenantRequest(
        slug=TENANT, name="gRPC & Co", owner_email=EMAIL, owner_password=PASSWORD), timeout=20)
    assert created.tenant.slug == TENANT, created
    ok("Tenants.Create as an administrator caller")

    def sign_in(ip):
        return users.SignIn(users_pb2.SignInRequest(email=EMAIL, password=PASSWORD), timeout=20,
                            metadata=md(moat_client_ip=ip, moat_request_id="grpc-check-1"))

    first = sign_in("192.0.2.10")
    second = sign_in("192.0.2.20")
    assert first.session_token and second.session_token, (first, second)
    ok("Users.SignIn with moat-tenant and moat-client-ip metadata")

    valid = sessions.Validate(sessions_pb2.ValidateRequest(token=second.session_token), metadata=md(), timeout=10)
    assert valid.session_id == second.session.id and valid.user_id == first.user.id, valid
    ok("Sessions.Validate")
    reflection_checks(ch, second.session_token, second.session.id)

    listed = sessions.List(sessions_pb2.ListSessionsRequest(), metadata=md(first.session_token), timeout=10)
    by_id = {s.id: s for s in listed.sessions}
    assert set(by_id) == {first.session.id, second.session.id}, listed
    assert by_id[first.session.id].current and not by_id[second.session.id].current, listed
    assert by_id[second.session.id].ip == "192.0.2.20", by_id[second.session.id]
    assert "Firefox" in by_id[first.session.id].browser, by_id[first.session.id]
    ok("Sessions.List with authorization: Bearer (current marked, ip and browser from metadata)")

    sessions.Revoke(sessions_pb2.RevokeSessionRequest(session_id=second.session.id), metadata=md(first.session_token),
                    timeout=10)
    error = expect_error(lambda: sessions.Validate(sessions_pb2.ValidateRequest(token=second.session_token),
                                                   metadata=md(), timeout=10),
                         grpc.StatusCode.UNAUTHENTICATED, "SESSION_INVALID")
    ok("revoked session: Validate UNAUTHENTICATED, ErrorInfo reason %s" % error_info(error)[0].reason)

    expect_error(lambda: sessions.List(sessions_pb2.ListSessionsRequest(), metadata=md(), timeout=10),
                 grpc.StatusCode.UNAUTHENTICATED, "SESSION_REQUIRED")
    raw_validate = ch.unary_unary("/moat.v1.Sessions/Validate")
    expect_error(lambda: raw_validate(b"\xff\xff\xff", metadata=md(), timeout=10), grpc.StatusCode.INVALID_ARGUMENT,
                 "INVALID_PAYLOAD")
    expect_error(lambda: ch.unary_unary("/moat.v1.Nope/Nothing")(b"", timeout=10), grpc.StatusCode.UNIMPLEMENTED,
                 "UNKNOWN_METHOD")
    ok("no token: SESSION_REQUIRED; bad payload: INVALID_ARGUMENT; unknown method: UNIMPLEMENTED")

    # Two-factor with codes computed here.
    two_factor = two_factor_pb2_grpc.TwoFactorStub(ch)
    token = first.session_token
    enrollment = two_factor.BeginEnrollment(two_factor_pb2.BeginEnrollmentRequest(password=PASSWORD),
                                            metadata=md(token), timeout=20)
    secret = enrollment.secret.replace(" ", "")
    now = time.time()
    confirmed = two_factor.ConfirmEnrollment(two_factor_pb2.ConfirmEnrollmentRequest(code=totp(secret, now)),
                                             metadata=md(token), timeout=20)
    assert len(confirmed.recovery_codes) == 10, confirmed
    pending = sign_in("192.0.2.30")
    assert pending.second_factor_required and not pending.session_token, pending
    expect_error(lambda: users.CompleteSignIn(
        users_pb2.CompleteSignInRequest(challenge=pending.challenge, code=totp(secret, now)), metadata=md(),
        timeout=20), grpc.StatusCode.UNAUTHENTICATED, "TOTP_CODE_REUSED")
    done = users.CompleteSignIn(
        users_pb2.CompleteSignInRequest(challenge=pending.challenge, code=totp(secret, now + 30)), metadata=md(),
        timeout=20)
    assert done.session_token and done.session.second_factor_satisfied, done
    ok("2FA: enrolment confirmed with a computed TOTP code; reused code refused; sign-in completed")

    # Deadlines. A Poll waits at most until the call's deadline: with
    # grpc-timeout 1.5 s and wait_ms 30 s it ends (OK, empty or not) in
    # about 1.5 s; were grpc-timeout ignored, the server default (10 s)
    # would let the client's own deadline expire first.
    events = events_pb2_grpc.EventsStub(ch)
    started = time.monotonic()
    try:
        events.Poll(events_pb2.PollRequest(consumer="grpc-deadline", wait_ms=30000, type_prefix="no.such."),
                    timeout=1.5)
        outcome = "OK"
    except grpc.RpcError as error:
        outcome = error.code().name
    elapsed = time.monotonic() - started
    assert outcome == "OK" and elapsed < 1.5, (outcome, elapsed)
    ok("grpc-timeout reaches the handler: a 30 s Poll ended at the 1.5 s deadline (%.2f s)" % elapsed)
    expect_error(lambda: users.SignIn(users_pb2.SignInRequest(email=EMAIL, password=PASSWORD), metadata=md(),
                                      timeout=0.001), grpc.StatusCode.DEADLINE_EXCEEDED)
    ok("a 1 ms deadline expires: DEADLINE_EXCEEDED")

    # Long poll woken by a write on another channel.
    consumer = "grpc-wake"
    while True:
        batch = events.Poll(events_pb2.PollRequest(consumer=consumer, max_events=1000), timeout=10)
        if not batch.events:
            break
        events.Ack(events_pb2.AckRequest(consumer=consumer, sequence=batch.last_sequence_scanned), timeout=10)
    result = {}

    def poll():
        started = time.monotonic()
        result["reply"] = events.Poll(
            events_pb2.PollRequest(consumer=consumer, wait_ms=20000, type_prefix="password_reset."), timeout=30)
        result["elapsed"] = time.monotonic() - started

    waiter = threading.Thread(target=poll)
    waiter.start()
    time.sleep(0.7)
    with channel() as other:
        users_pb2_grpc.UsersStub(other).RequestPasswordReset(users_pb2.RequestPasswordResetRequest(email=EMAIL),
                                                            metadata=md(), timeout=20)
    waiter.join(30)
    reply = result["reply"]
    assert [e.type for e in reply.events] == ["password_reset.requested"], reply
    assert 0.5 < result["elapsed"] < 10, result["elapsed"]
    ok("Events.Poll (20 s wait) woken after %.2f s by a write on another channel" % result["elapsed"])

    # 200 concurrent calls on one channel.
    request = sessions_pb2.ValidateRequest(token=done.session_token)
    futures = [sessions.Validate.future(request, metadata=md(), timeout=30) for _ in range(200)]
    answers = [f.result() for f in futures]
    assert all(a.session_id == done.session.id for a in answers), answers[:2]
    ok("200 concurrent Validate calls on one channel")
    ch.close()

    # --- hostile peers ---------------------------------------------------
    sock = raw_connect()
    sock.sendall(PREFACE + os.urandom(4096))
    assert closed_by_daemon(sock), "garbage after the preface: connection not closed"
    sock.close()
    ok("garbage right after the preface: connection closed")
    still_serving("garbage after the preface")

    sock = raw_connect()
    sock.sendall(PREFACE + frame(4, 0, 0, b"") + os.urandom(65536))
    assert closed_by_daemon(sock), "random bytes after SETTINGS: connection not closed"
    sock.close()
    ok("random bytes after a valid preface and SETTINGS: connection closed")
    still_serving("random bytes after a valid preface")

    # A HEADERS flood from a peer that never reads, on a thread while the
    # daemon is checked from other connections. moatd either keeps up,
    # stops reading it (backpressure) or closes it (HTTP/2's DoS limits).
    sock = raw_connect()
    sock.sendall(PREFACE + frame(4, 0, 0, b""))
    flood = {"streams": 0, "end": "sent everything"}

    def send_flood():
        headers = hpack(grpc_headers("/moat.v1.Health/Check"))
        deadline = time.monotonic() + 8
        sock.settimeout(1)
        for stream in range(1, 2 * 50000, 2):
            if time.monotonic() > deadline:
                flood["end"] = "stopped after 8 s"
                return
            try:
                sock.sendall(frame(1, 0x5, stream, headers))
            except socket.timeout:
                flood["end"] = "moatd stopped reading"
                return
            except (BrokenPipeError, ConnectionResetError):
                flood["end"] = "moatd closed the connection"
                return
            flood["streams"] += 1

    flooder = threading.Thread(target=send_flood)
    flooder.start()
    time.sleep(0.5)
    still_serving("the start of a HEADERS flood")
    flooder.join(20)
    sock.close()
    ok("HEADERS flood: %d streams, then %s" % (flood["streams"], flood["end"]))
    still_serving("a HEADERS flood")

    sock = raw_connect()
    sock.sendall(PREFACE + frame(4, 0, 0, b""))
    block = hpack(grpc_headers("/moat.v1.Health/Check", [("x-big", "a" * 200000)]))
    chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
    data = frame(1, 0x1, 1, chunks[0]) + b"".join(
        frame(9, 0x4 if i == len(chunks) - 1 else 0, 1, c) for i, c in enumerate(chunks[1:], 1))
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed_by_daemon(sock), "oversized headers: connection not closed"
    sock.close()
    ok("oversized headers (200 KB header block): connection closed")
    with channel() as big:
        try:
            health_pb2_grpc.HealthStub(big).Check(
                health_pb2.HealthCheckRequest(), metadata=[("x-big", "a" * 100000)], timeout=10)
            raise AssertionError("a call with 100 KB of metadata was answered")
        except grpc.RpcError as error:
            refused = error.code()
    ok("a stock client's call with 100 KB of metadata is refused (%s)" % refused.name)
    still_serving("oversized headers")

    # A client that never reads: a zero flow-control window, 200 calls, and
    # nothing read back.
    sock = raw_connect()
    settings = struct.pack(">HI", 4, 0)  # SETTINGS_INITIAL_WINDOW_SIZE = 0
    sock.sendall(PREFACE + frame(4, 0, 0, settings))
    message = health_pb2.HealthCheckRequest().SerializeToString()
    body = b"\x00" + struct.pack(">I", len(message)) + message
    try:
        for stream in range(1, 401, 2):
            sock.sendall(frame(1, 0x4, stream, hpack(grpc_headers("/grpc.health.v1.Health/Check"))) +
                         frame(0, 0x1, stream, body))
    except (BrokenPipeError, ConnectionResetError):
        # Streams past SETTINGS_MAX_CONCURRENT_STREAMS are refused; a loaded
        # moatd may close such a client. Either way others keep being served.
        pass
    still_serving("a client that never reads (window 0, 200 calls pending)")
    sock.close()
    still_serving("the non-reading client went away")
    print("gRPC wire check passed: %d checks" % checks)


if __name__ == "__main__":
    main()
