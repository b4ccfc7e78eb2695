#!/usr/bin/env bash
# Builds the C client with its Makefile alone (no SwiftPM), installs it into a
# scratch prefix, compiles examples/validate.c the way a C service would
# (cc validate.c $(pkg-config --cflags --libs moatclient)) and runs it against
# a running moatd; then runs tests/client_check (every documented status),
# under Valgrind when it is installed.
#
#   Sources/CMoatClient/examples/run-example.sh [--socket PATH] [--moatctl PATH] [--no-valgrind]
#
# --socket   the daemon's socket (default $MOAT_SOCKET, else ./moat-data/moat.sock)
# --moatctl  used to create a tenant and its owner for the run, as an
#            administrator caller (default: moatctl on PATH). Skipped when
#            MOAT_TENANT, MOAT_EMAIL and MOAT_PASSWORD name an existing user.
# Exit status: 0 when the example and every check pass.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
socket="${MOAT_SOCKET:-./moat-data/moat.sock}"
moatctl="${MOATCTL:-moatctl}"
valgrind=auto
while (($#)); do
    case "$1" in
        --socket) socket="${2:?--socket needs a path}"; shift 2 ;;
        --moatctl) moatctl="${2:?--moatctl needs a path}"; shift 2 ;;
        --no-valgrind) valgrind=no; shift ;;
        -h | --help) sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "run-example: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ -S "$socket" ]] || { echo "run-example: no daemon socket at $socket (start moatd first)" >&2; exit 1; }
socket="$(cd "$(dirname "$socket")" && pwd -P)/$(basename "$socket")"

work="$(mktemp -d "${TMPDIR:-/tmp}/moat-c-example.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "== C client: make, make install PREFIX=$work/prefix"
make -C "$here" --no-print-directory -s BUILD="$work/build" PREFIX="$work/prefix" install check
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
echo "pkg-config --cflags --libs moatclient: $(pkg-config --cflags --libs moatclient)"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -o "$work/validate" "$here/examples/validate.c" $(pkg-config --cflags --libs moatclient)

if [[ -n "${MOAT_TENANT:-}" && -n "${MOAT_EMAIL:-}" && -n "${MOAT_PASSWORD:-}" ]]; then
    tenant="$MOAT_TENANT" email="$MOAT_EMAIL" password="$MOAT_PASSWORD"
else
    tenant="c-example-$(date +%s)-$$"
    email="owner@$tenant.test"
    password="c-client example $RANDOM$RANDOM"
    echo "== tenant $tenant, owner $email (moatctl tenant create)"
    printf '%s\n' "$password" |
        "$moatctl" tenant create --socket "$socket" --slug "$tenant" --name "C example" \
            --owner-email "$email" --owner-password-stdin >/dev/null
fi

echo "== validate -s $socket $tenant $email"
MOAT_PASSWORD="$password" "$work/validate" -s "$socket" "$tenant" "$email"

echo "== client_check (every documented status)"
runner=()
if [[ "$valgrind" == auto ]] && command -v valgrind >/dev/null; then
    runner=(valgrind --quiet --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all
        --error-exitcode=3)
    echo "(under ${runner[*]})"
elif [[ "$valgrind" == auto ]]; then
    echo "(valgrind not installed: running without it)"
fi
MOAT_PASSWORD="$password" "${runner[@]}" "$work/build/client_check" "$socket" "$tenant" "$email"
echo "run-example: ok"
