#!/usr/bin/env python3
"""Revocation across moatd instances on one PostgreSQL: how long it takes.

Starts N moatd (a copy of the same master.key each) on one schema of the
PostgreSQL at POSTGRES_URL, then ROUNDS times: signs a session in, warms
every instance's cache with it, starts one poller per instance validating
it every 0.5 ms (its own connection), sends Sessions.SignOut through
instance A and records

  - return: from SignOut sent to the call returning;
  - last refusal: from SignOut sent to the moment the last instance's
    poller first saw UNAUTHENTICATED (each poller's call that saw it was
    sent before this instant, so this bounds propagation from above).

Prints p50/p99/max of both, and the cluster's load (a benchmark, not a
test: nothing is asserted but the guarantee itself, which a stale success
after the return would break).

Usage: cluster_revocation.py MOATD GENERATED_DIR POSTGRES_URL PASSWORD_FILE [INSTANCES] [ROUNDS]
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "Tests", "wire"))
sys.argv = [sys.argv[0]] + sys.argv[1:]
import cluster_check as wire  # noqa: E402  (the check's client and daemon helpers)

INSTANCES = int(sys.argv[5]) if len(sys.argv) > 5 else 3
ROUNDS = int(sys.argv[6]) if len(sys.argv) > 6 else 200
POLL_GAP = float(os.environ.get("POLL_GAP_MS", "0.5")) / 1000


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main():
    root = tempfile.mkdtemp(prefix="moat-cluster-bench.")
    wire.psql("CREATE SCHEMA %s" % wire.SCHEMA)
    try:
        daemons = [wire.Daemon(root, "i%d" % index) for index in range(INSTANCES)]
        daemons[0].start()
        for daemon in daemons[1:]:
            os.makedirs(daemon.data_dir, mode=0o750)
            shutil.copy2(os.path.join(daemons[0].data_dir, "master.key"), os.path.join(daemon.data_dir, "master.key"))
            daemon.start()
        connections = [wire.Connection(daemon.socket) for daemon in daemons]
        a = connections[0]
        a.ok("/moat.v1.Tenants/Create", wire.tenants_pb2.CreateTenantRequest(
            slug="cluster", name="Cluster", owner_email="owner@cluster.test", owner_password=wire.PASSWORD),
            wire.tenants_pb2.CreateTenantResponse)
        returns, lasts = [], []
        stale = 0
        for round_ in range(ROUNDS):
            signed = wire.sign_in(connections[round_ % INSTANCES], "owner@cluster.test")
            token = signed.session_token
            wire.warm(connections, token)
            first_refusal = [None] * INSTANCES
            returned = [None]
            go = threading.Event()

            def poll(index):
                nonlocal stale
                connection = wire.Connection(daemons[index].socket)
                go.wait()
                while True:
                    sent = time.monotonic()
                    status, _ = connection.validate(token)
                    if status.code != wire.OK:
                        first_refusal[index] = time.monotonic()
                        break
                    if returned[0] is not None and sent > returned[0]:
                        stale += 1
                    # Not a busy loop: the pollers share the CPUs with the daemons.
                    time.sleep(POLL_GAP)
                connection.close()

            pollers = [threading.Thread(target=poll, args=(index,)) for index in range(INSTANCES)]
            for poller in pollers:
                poller.start()
            go.set()
            time.sleep(0.002)
            sent = time.monotonic()
            a.ok("/moat.v1.Sessions/SignOut", wire.users_pb2.SignOutRequest(), wire.users_pb2.SignOutResponse,
                 tenant="cluster", authorization=token)
            returned[0] = time.monotonic()
            for poller in pollers:
                poller.join()
            returns.append((returned[0] - sent) * 1000)
            lasts.append((max(first_refusal) - sent) * 1000)
        for connection in connections:
            connection.close()
        load = open("/proc/loadavg").read().split()[:3]
        print("revocation across %d instances (fence %d ms), %d rounds, load average %s" % (
            INSTANCES, wire.FENCE_MS, ROUNDS, " ".join(load)))
        for name, values in (("SignOut returned", returns), ("last instance refused", lasts)):
            print("  %-22s p50 %7.2f ms   p99 %7.2f ms   max %7.2f ms" % (
                name, percentile(values, 0.5), percentile(values, 0.99), max(values)))
        waited = sum(1 for value in returns if value >= wire.FENCE_MS)
        print("  calls that waited out the bound (an instance did not acknowledge in time): %d of %d" % (
            waited, len(returns)))
        print("  stale successes after the call returned: %d" % stale)
        for daemon in daemons:
            daemon.stop()
    finally:
        for process in wire.RUNNING:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait()
        shutil.rmtree(root, ignore_errors=True)
        wire.psql("DROP SCHEMA %s CASCADE" % wire.SCHEMA)


if __name__ == "__main__":
    main()
