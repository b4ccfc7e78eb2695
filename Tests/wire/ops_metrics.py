#!/usr/bin/env python3
"""Metrics: the listener, the names, promtool, and counters that move.

Starts moatd with metrics.listen on a Unix socket, scrapes /metrics
(HTTP/1.1 over the socket, no HTTP library), makes a small load (a tenant,
sign-ins right and wrong, Validate hits, Health), scrapes again during it,
and checks:
  - `promtool check metrics` accepts the text;
  - moat_rpc_requests_total{method,code} moved by exactly the calls made,
    sign-in outcomes and the Validate cache hits moved, latency histograms
    count the calls, gauges are present;
  - no label value is a tenant id, user id, email, token or IP;
  - only /metrics answers (404 elsewhere, 405 for POST);
  - `moatctl metrics` prints the same families;
  - a TCP listener on 127.0.0.1 serves too.

Usage: ops_metrics.py MOATD MOATCTL GENERATED_DIR
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moatwire  # noqa: E402

MOATD, MOATCTL, GENERATED = sys.argv[1], sys.argv[2], sys.argv[3]
moatwire.load(GENERATED)
from moat.v1 import health_pb2, sessions_pb2, tenants_pb2, users_pb2  # noqa: E402

PASSWORD = "metrics-check-pass-5512"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$')


def http(address, request):
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(address)
    sock.sendall(request.encode())
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, head.decode(), body.decode()


def listening(address, timeout=20.0):
    """Waits until the metrics listener accepts (moatd opens it just after
    the RPC socket that Daemon.start waits for)."""
    deadline = time.monotonic() + timeout
    while True:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(address)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
        time.sleep(0.05)


def scrape(address):
    status, head, body = http(address, "GET /metrics HTTP/1.1\r\nHost: moat\r\n\r\n")
    assert status == 200, (status, head, body)
    assert "text/plain; version=0.0.4" in head, head
    return body


def samples(text):
    """{(name, frozenset(labels)): value}"""
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        values[(match.group(1), labels)] = float(match.group(4))
    return values


def value(values, name, **labels):
    return values.get((name, frozenset(labels.items())), 0.0)


def promtool(text):
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)


def main():
    work = tempfile.mkdtemp(prefix="moat-metrics.")
    metrics_sock = os.path.join(work, "metrics.sock")
    daemon = moatwire.Daemon(MOATD, os.path.join(work, "data"),
                             args=["--set", f'metrics.listen="unix:{metrics_sock}"']).start()
    try:
        listening(metrics_sock)
        before = samples(scrape(metrics_sock))
        conn = moatwire.Connection(daemon.socket)
        created = conn.ok("/moat.v1.Tenants/Create",
                          tenants_pb2.CreateTenantRequest(slug="acme", name="Acme", owner_email="owner@acme.test",
                                                          owner_password=PASSWORD),
                          tenants_pb2.CreateTenantResponse)
        tokens = []
        for _ in range(3):
            tokens.append(conn.ok("/moat.v1.Users/SignIn",
                                  users_pb2.SignInRequest(email="owner@acme.test", password=PASSWORD),
                                  users_pb2.SignInResponse, tenant="acme").session_token)
        for _ in range(2):
            status, _ = conn.call("/moat.v1.Users/SignIn",
                                  users_pb2.SignInRequest(email="owner@acme.test", password="wrong-password-x"),
                                  users_pb2.SignInResponse, tenant="acme")
            assert status.reason == "INVALID_CREDENTIALS", status
        for _ in range(10):
            conn.ok("/moat.v1.Sessions/Validate", sessions_pb2.ValidateRequest(token=tokens[0]),
                    sessions_pb2.ValidateResponse, tenant="acme")
        for _ in range(5):
            conn.ok("/moat.v1.Health/Check", health_pb2.CheckRequest(), health_pb2.CheckResponse)
        status, _ = conn.call("/moat.v1.Sessions/Validate", sessions_pb2.ValidateRequest(token="not-a-token"),
                              sessions_pb2.ValidateResponse, tenant="acme")
        assert status.code == 16, status

        text = scrape(metrics_sock)  # the connection above is still open
        promtool(text)
        after = samples(text)

        def moved(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        assert moved("moat_rpc_requests_total", method="/moat.v1.Users/SignIn", code="OK") == 3
        assert moved("moat_rpc_requests_total", method="/moat.v1.Users/SignIn", code="UNAUTHENTICATED") == 2
        assert moved("moat_rpc_requests_total", method="/moat.v1.Sessions/Validate", code="OK") == 10
        assert moved("moat_rpc_requests_total", method="/moat.v1.Sessions/Validate", code="UNAUTHENTICATED") == 1
        assert moved("moat_rpc_requests_total", method="/moat.v1.Health/Check", code="OK") == 5
        assert moved("moat_rpc_requests_total", method="/moat.v1.Tenants/Create", code="OK") == 1
        assert moved("moat_rpc_request_duration_seconds_count", method="/moat.v1.Sessions/Validate") == 11
        assert moved("moat_sign_ins_total", outcome="ok") == 3
        assert moved("moat_sign_ins_total", outcome="wrong_password") == 2
        assert moved("moat_session_cache_hits_total") >= 9, moved("moat_session_cache_hits_total")
        # 3 good and 2 wrong sign-ins: each one Argon2id hash on the pool.
        assert moved("moat_password_hash_duration_seconds_count") >= 5, moved("moat_password_hash_duration_seconds_count")
        for family in ("moat_password_hash_queue_depth", "moat_password_hash_refused_total",
                       "moat_session_cache_evictions_total"):
            assert f"# TYPE {family} " in text, family
        assert value(after, "moat_password_hash_queue_depth") == 0
        assert value(after, "moat_password_hash_refused_total") == 0
        assert value(after, "moat_session_cache_evictions_total") == 0
        assert value(after, "moat_connections_open") >= 1
        assert value(after, "moat_session_cache_entries") >= 1
        assert value(after, "moat_events_newest_sequence") >= 1
        assert moved("moat_store_commit_duration_seconds_count") >= 1
        assert moved("moat_store_write_batch_size_count") >= 1
        assert moved("moat_store_read_wait_seconds_count") >= 1
        assert value(after, "process_resident_memory_bytes") > 1 << 20
        assert value(after, "process_open_fds") >= 3

        # No label carries a tenant, user, session, email, token or address.
        secrets = [created.tenant.id, created.owner.id, "owner@acme.test", "acme", "127.0.0.1"] + tokens
        for (name, labels) in after:
            for (label, text_value) in labels:
                assert label in {"method", "code", "outcome", "kind", "consumer", "le"}, (name, label)
                for secret in secrets:
                    assert secret not in text_value, (name, label, text_value)

        status, _, _ = http(metrics_sock, "GET /other HTTP/1.1\r\nHost: moat\r\n\r\n")
        assert status == 404, status
        status, _, _ = http(metrics_sock, "POST /metrics HTTP/1.1\r\nHost: moat\r\nContent-Length: 0\r\n\r\n")
        assert status == 405, status
        status, _, _ = http(metrics_sock, "garbage\r\n\r\n")
        assert status == 400, status

        printed = moatwire.run([MOATCTL, "metrics", "--socket", daemon.socket])
        assert printed.returncode == 0, printed.stderr
        assert "moat_rpc_requests_total{" in printed.stdout and "# HELP moat_sign_ins_total" in printed.stdout
        promtool(printed.stdout)
        conn.close()
    finally:
        assert daemon.terminate() == 0
    assert not os.path.exists(metrics_sock), "metrics socket left behind"

    # TCP on loopback.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    tcp = moatwire.Daemon(MOATD, os.path.join(work, "tcp"),
                          args=["--set", f'metrics.listen="127.0.0.1:{port}"']).start()
    try:
        listening(("127.0.0.1", port))
        promtool(scrape(("127.0.0.1", port)))
    finally:
        assert tcp.terminate() == 0
    shutil.rmtree(work, ignore_errors=True)
    print("metrics: ok (promtool clean, counters moved by the calls made, no identifying labels, 404/405/400)")


main()
