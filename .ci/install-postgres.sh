#!/bin/sh
# Make PostgreSQL server binaries available for the store tests (tests/pg.py).
# Called by .ci/run; does nothing when initdb is already there.
set -eu
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    # Debian's package starts a cluster on 5432; the tests run their own, so stop it.
    $SUDO service postgresql stop >/dev/null 2>&1 || true
else
    echo "install-postgres: no apt-get; install PostgreSQL server binaries (initdb, pg_ctl) by hand" >&2
    exit 1
fi
