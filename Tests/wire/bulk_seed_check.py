#!/usr/bin/env python3
"""The benchmark-only bulk seeder (`moat-bench bulk-seed`) against a real moatd.

1. It seeds a fresh data directory; moatd starts on it as usual and every
   seeded token validates (moat-bench validate primes each token once and
   fails on any refusal); a made-up token is refused (SESSION_INVALID).
2. It seeds that (marked) directory again.
3. It refuses a database that is not a benchmark's: the data directory of a
   moatd that ran once (its meta table holds the daemon's facts), and leaves
   it unmarked and without accounts.

Usage: bulk_seed_check.py MOATD MOAT_BENCH
"""
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

moatd, bench = sys.argv[1], sys.argv[2]


def start(data, sock):
    proc = subprocess.Popen(
        [moatd, "--data-dir", data, "--socket", sock, "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(300):
        if os.path.exists(sock):
            return proc
        if proc.poll() is not None:
            raise SystemExit("moatd exited: %s" % proc.stderr.read().decode()[-2000:])
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("moatd did not create its socket")


def stop(proc):
    proc.terminate()
    assert proc.wait(timeout=30) == 0, "moatd exited with %s" % proc.returncode


def seed(data, out, sessions, expect_ok=True):
    result = subprocess.run(
        [bench, "bulk-seed", "--data-dir", data, "--tenants", "3", "--users", "10", "--sessions", str(sessions),
         "--out", out, "--batch", "7"],
        capture_output=True, text=True)
    if expect_ok:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0, "bulk-seed accepted a database that is not a benchmark's"
        assert "refusing to bulk-seed" in result.stderr, result.stderr
    return result


def seed_lines(path, kind):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.startswith(kind + "\t")]


def validate_all(sock, seeds, sessions):
    # Priming validates every token once and fails on any refusal.
    result = subprocess.run(
        [bench, "validate", "--socket", sock, "--seeds", seeds, "--requests", "50", "--warmup", "0", "--quiet",
         "--random"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "primed the session cache: %d Validate calls" % sessions in result.stderr, result.stderr
    assert ", 0 errors" in result.stderr, result.stderr


def main():
    with tempfile.TemporaryDirectory(prefix="moat-bulk-seed-") as work:
        data = os.path.join(work, "bench-data")
        sock = os.path.join(work, "moat.sock")
        seeds = os.path.join(work, "seeds.tsv")

        # 1. A fresh directory: seeded, served, every token valid.
        seed(data, seeds, 40)
        sessions = seed_lines(seeds, "S")
        assert len(sessions) == 40 and len(seed_lines(seeds, "T")) == 3 and len(seed_lines(seeds, "U")) == 10
        assert len({s[4] for s in sessions}) == 40, "tokens are not distinct"
        assert all(len(s[4]) == 43 for s in sessions), "tokens are not 32 random bytes in base64url"
        db = sqlite3.connect(os.path.join(data, "moat.db"))
        assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 40
        assert db.execute("SELECT count(*) FROM meta WHERE key = 'moat_bench.bulk_seeded'").fetchone()[0] == 1
        # No token is stored, only its SHA-256.
        stored = {row[0] for row in db.execute("SELECT token_hash FROM sessions")}
        assert all(len(h) == 32 for h in stored)
        assert not any(s[4].encode() in stored for s in sessions)
        db.close()
        proc = start(data, sock)
        try:
            validate_all(sock, seeds, 40)
            # A made-up token is refused (the validate run above counts it as an error).
            fake = os.path.join(work, "fake.tsv")
            with open(seeds) as f, open(fake, "w") as g:
                for line in f:
                    if line.startswith("S\t"):
                        fields = line.rstrip("\n").split("\t")
                        fields[4] = "A" * 43
                        g.write("\t".join(fields) + "\n")
                        break
                    g.write(line)
            result = subprocess.run(
                [bench, "validate", "--socket", sock, "--seeds", fake, "--requests", "1", "--warmup", "0", "--quiet"],
                capture_output=True, text=True)
            assert result.returncode != 0 and "SESSION_INVALID" in result.stdout + result.stderr, (
                result.stdout + result.stderr)
        finally:
            stop(proc)

        # 2. The marked directory again (moatd ran on it meanwhile).
        more = os.path.join(work, "more.tsv")
        seed(data, more, 5)
        proc = start(data, sock)
        try:
            validate_all(sock, more, 5)
        finally:
            stop(proc)

        # 3. A real daemon's database: refused, left as it was.
        real = os.path.join(work, "real-data")
        proc = start(real, os.path.join(work, "real.sock"))
        stop(proc)
        db_path = os.path.join(real, "moat.db")
        before = sqlite3.connect(db_path).execute("SELECT count(*) FROM meta").fetchone()[0]
        assert before > 0, "a daemon that ran once left no facts in meta; the refusal is not tested"
        seed(real, os.path.join(work, "refused.tsv"), 5, expect_ok=False)
        db = sqlite3.connect(db_path)
        assert db.execute("SELECT count(*) FROM meta WHERE key = 'moat_bench.bulk_seeded'").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM tenants").fetchone()[0] == 0
        db.close()
        assert not os.path.exists(os.path.join(work, "refused.tsv"))
    print("bulk-seed: fresh and marked directories seeded and served, a real database refused")


main()
