#!/usr/bin/env python3
"""Backup and restore through the operator commands.

A writer thread creates users over the socket while `moatctl backup --out`
runs; the backup is checked by Python's own sqlite3 (PRAGMA integrity_check,
mode 0600, the event sequence moatctl printed), restored with `moatd
--restore` into a new data directory holding only the same master.key,
and a moatd started there has every user whose Create returned before the
backup began. `moatd --restore` into a non-empty directory is refused.

Usage: ops_backup.py MOATD MOATCTL GENERATED_DIR
"""
import os
import shutil
import sqlite3
import stat
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moatwire  # noqa: E402

MOATD, MOATCTL, GENERATED = sys.argv[1], sys.argv[2], sys.argv[3]
moatwire.load(GENERATED)
from moat.v1 import tenants_pb2, users_pb2  # noqa: E402

PASSWORD = "backup-check-pass-9921"


def main():
    work = tempfile.mkdtemp(prefix="moat-backup.")
    first = moatwire.Daemon(MOATD, os.path.join(work, "first")).start()
    try:
        conn = moatwire.Connection(first.socket)
        conn.ok("/moat.v1.Tenants/Create",
                tenants_pb2.CreateTenantRequest(slug="acme", name="Acme", owner_email="owner@acme.test",
                                                owner_password=PASSWORD),
                tenants_pb2.CreateTenantResponse)
        acknowledged = []
        lock = threading.Lock()
        stop = threading.Event()
        failures = []

        def writer():
            try:
                own = moatwire.Connection(first.socket)
                index = 0
                while not stop.is_set():
                    email = f"u{index}@acme.test"
                    index += 1
                    own.ok("/moat.v1.Users/Create", users_pb2.CreateUserRequest(email=email, password=PASSWORD),
                           tenants_pb2.User, tenant="acme")
                    with lock:
                        acknowledged.append(email)
            except Exception as error:  # noqa: BLE001 - reported below
                failures.append(error)

        thread = threading.Thread(target=writer)
        thread.start()
        while len(acknowledged) < 30 and not failures:
            time.sleep(0.01)
        with lock:
            before = set(acknowledged)
        path = os.path.join(work, "moat-backup.db")
        result = moatwire.run([MOATCTL, "backup", "--out", path, "--socket", first.socket])
        assert result.returncode == 0, result.stderr
        while len(acknowledged) < len(before) + 30 and not failures:
            time.sleep(0.01)
        stop.set()
        thread.join()
        assert not failures, failures
        fields = dict(line.split("  ", 1) for line in result.stdout.splitlines())
        fields = {key.strip(): value.strip() for key, value in fields.items()}
        sequence = int(fields["last event sequence"])
        assert fields["size"] == f"{os.path.getsize(path)} bytes", (fields, os.path.getsize(path))
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, oct(os.stat(path).st_mode)
        again = moatwire.run([MOATCTL, "backup", "--out", path, "--socket", first.socket])
        assert again.returncode == 1 and "BACKUP_EXISTS" in again.stderr, again.stderr

        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("SELECT MAX(sequence) FROM events").fetchone()[0] == sequence
        in_backup = {row[0] for row in db.execute("SELECT email FROM users")}
        db.close()
        assert before <= in_backup, sorted(before - in_backup)[:5]
    finally:
        assert first.terminate() == 0

    refused = moatwire.run([MOATD, "--data-dir", first.data_dir, "--restore", path])
    assert refused.returncode == 1 and "is not empty" in refused.stderr, refused.stderr

    second_dir = os.path.join(work, "second")
    os.makedirs(second_dir, mode=0o750)
    shutil.copy2(os.path.join(first.data_dir, "master.key"), os.path.join(second_dir, "master.key"))
    restored = moatwire.run([MOATD, "--data-dir", second_dir, "--restore", path])
    assert restored.returncode == 0, restored.stderr
    assert f"last event sequence  {sequence}" in restored.stdout, restored.stdout
    second = moatwire.Daemon(MOATD, second_dir).start()
    try:
        conn = moatwire.Connection(second.socket)
        found = set()
        token = ""
        while True:
            page = conn.ok("/moat.v1.Users/List", users_pb2.ListUsersRequest(page_size=500, page_token=token),
                           users_pb2.ListUsersResponse, tenant="acme")
            found.update(user.email for user in page.users)
            token = page.next_page_token
            if not token:
                break
        assert before <= found, sorted(before - found)[:5]
        signed_in = conn.ok("/moat.v1.Users/SignIn",
                            users_pb2.SignInRequest(email="owner@acme.test", password=PASSWORD),
                            users_pb2.SignInResponse, tenant="acme")
        assert signed_in.session_token
    finally:
        assert second.terminate() == 0
    shutil.rmtree(work, ignore_errors=True)
    print(f"backup and restore: ok ({len(before)} users acknowledged before the backup, all restored; "
          f"last event sequence {sequence})")


main()
