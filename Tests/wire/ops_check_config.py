#!/usr/bin/env python3
"""moatd --check-config: exit 0 on a valid configuration, 2 with the key and
the reason on an invalid one; weak hashing only with hashing.allow_weak.

Usage: ops_check_config.py MOATD REPO_ROOT
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moatwire import run  # noqa: E402

MOATD, ROOT = sys.argv[1], sys.argv[2]


def check(args, code, *needles):
    result = run([MOATD, "--check-config"] + args)
    assert result.returncode == code, (args, result.returncode, result.stdout, result.stderr)
    text = result.stdout + result.stderr
    for needle in needles:
        assert needle in text, (args, needle, text)
    return text


def main():
    check(["--config", os.path.join(ROOT, "deploy/moatd.toml")], 0, "configuration ok")
    check([], 0, "configuration ok")
    check(["--set", "hashing.memory_kib=8", "--set", "hashing.iterations=1"], 2,
          "key hashing.memory_kib", "below OWASP's minimum", "hashing.allow_weak")
    check(["--set", "hashing.memory_kib=8", "--set", "hashing.iterations=1", "--set", "hashing.allow_weak=true"], 0)
    check(["--set", "cluster.fence_ms=100"], 0, "configuration ok")
    check(["--set", "cluster.fence_ms=5"], 2, "key cluster.fence_ms", "outside")
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
        handle.write("[limits]\nmax_connections = 0\n")
        bad = handle.name
    try:
        check(["--config", bad], 2, "key limits.max_connections", "outside")
        with open(bad, "w") as handle:
            handle.write("[limits]\nmax_conections = 5\n")
        check(["--config", bad], 2, "key limits.max_conections", "unknown setting")
    finally:
        os.unlink(bad)
    print("check-config: ok")


main()
