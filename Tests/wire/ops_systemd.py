#!/usr/bin/env python3
"""systemd integration without PID 1.

  - `systemd-analyze verify` accepts deploy/moatd.service and moatd.socket
    (ExecStart pointed at the moatd under test) without a warning;
  - moatd under `systemd-socket-activate -l PATH` (which binds PATH, waits
    for the first connection, then execs moatd with LISTEN_FDS=1): the
    connection made before moatd ran is served, moatd logs that it serves
    the inherited socket, and after SIGTERM the socket file systemd owns is
    still there;
  - with a NOTIFY_SOCKET this check listens on and WATCHDOG_USEC=1 s:
    READY=1 with a STATUS= line, WATCHDOG=1 about every 0.5 s, and
    STOPPING=1 after SIGTERM, then exit 0.

Usage: ops_systemd.py MOATD GENERATED_DIR REPO_ROOT
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moatwire  # noqa: E402

MOATD, GENERATED, ROOT = sys.argv[1], sys.argv[2], sys.argv[3]
moatwire.load(GENERATED)
from moat.v1 import health_pb2  # noqa: E402


def verify_units(work):
    units = os.path.join(work, "units")
    os.makedirs(units)
    for name in ("moatd.service", "moatd.socket"):
        with open(os.path.join(ROOT, "deploy", name)) as handle:
            text = handle.read().replace("/usr/local/bin/moatd", os.path.abspath(MOATD))
        with open(os.path.join(units, name), "w") as handle:
            handle.write(text)
    result = moatwire.run(["systemd-analyze", "verify",
                           os.path.join(units, "moatd.service"), os.path.join(units, "moatd.socket")])
    complaints = [line for line in result.stderr.splitlines() if "moatd." in line]
    assert result.returncode == 0 and not complaints, (result.returncode, result.stderr)
    # The check is not blind: a misspelt key is reported.
    with open(os.path.join(units, "moatd.socket")) as handle:
        broken = handle.read().replace("ListenStream=", "ListenStreem=")
    with open(os.path.join(units, "moatd.socket"), "w") as handle:
        handle.write(broken)
    result = moatwire.run(["systemd-analyze", "verify", os.path.join(units, "moatd.socket")])
    assert result.returncode != 0 or "ListenStreem" in result.stderr, result.stderr
    print("systemd-analyze verify: ok")


def receive(notify, seconds):
    """Datagrams from moatd within SECONDS, with their arrival times."""
    messages = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        notify.settimeout(max(0.01, deadline - time.time()))
        try:
            data = notify.recv(4096)
        except socket.timeout:
            break
        messages.append((time.time(), data.decode()))
    return messages


def wait_for(notify, needle, seconds, seen):
    deadline = time.time() + seconds
    while time.time() < deadline:
        for stamp, message in receive(notify, min(0.5, deadline - time.time())):
            seen.append((stamp, message))
            if needle in message.split("\n"):
                return stamp, message
    raise SystemExit(f"no {needle} within {seconds} s; got {seen}")


def activated(work):
    data = os.path.join(work, "data")
    sock = os.path.join(work, "activated.sock")
    notify_path = os.path.join(work, "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    log_path = os.path.join(work, "moatd.log")
    log = open(log_path, "wb")
    process = subprocess.Popen(
        ["systemd-socket-activate", "-l", sock,
         "-E", f"NOTIFY_SOCKET={notify_path}", "-E", "WATCHDOG_USEC=1000000",
         MOATD, "--data-dir", data, "--socket", os.path.join(work, "configured.sock")] + moatwire.WEAK_HASHING,
        stdout=log, stderr=log)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        assert os.path.exists(sock), "systemd-socket-activate did not bind"
        # This connection is made before moatd runs; it must be served.
        early = moatwire.Connection(sock, timeout=60)
        seen = []
        _, ready = wait_for(notify, "READY=1", 60, seen)
        assert "STATUS=Serving on " + sock in ready, ready
        reply = early.ok("/moat.v1.Health/Check", health_pb2.CheckRequest(), health_pb2.CheckResponse)
        assert reply.status == health_pb2.CheckResponse.SERVING, reply
        early.close()
        assert not os.path.exists(os.path.join(work, "configured.sock")), "moatd bound its own socket too"

        pings = [stamp for stamp, message in receive(notify, 3.2) if "WATCHDOG=1" in message.split("\n")]
        assert len(pings) >= 4, f"{len(pings)} WATCHDOG=1 in 3.2 s"
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert all(0.3 < gap < 0.9 for gap in gaps), gaps

        process.send_signal(signal.SIGTERM)
        wait_for(notify, "STOPPING=1", 30, seen)
        assert process.wait(timeout=60) == 0, "moatd did not exit 0 on SIGTERM"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
        notify.close()
    with open(log_path) as handle:
        text = handle.read()
    assert "listening on an inherited socket" in text, text
    assert os.path.exists(sock), "moatd removed the socket systemd owns"
    print(f"socket activation and notify: ok (READY, {len(pings)} watchdog pings, gaps "
          f"{min(gaps):.2f}-{max(gaps):.2f} s, STOPPING)")


def main():
    work = tempfile.mkdtemp(prefix="moat-systemd.")
    try:
        verify_units(work)
        activated(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


main()
