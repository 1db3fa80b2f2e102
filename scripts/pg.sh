#!/usr/bin/env bash
# A throwaway PostgreSQL on 127.0.0.1 for the tests and the benchmark.
#
#   scripts/pg.sh start   # install Debian's postgresql if missing, initdb a fresh cluster, start it
#   scripts/pg.sh env     # print the DISKSNAP_TEST_PG_URL export (eval "$(scripts/pg.sh env)")
#   scripts/pg.sh stop    # stop the server by its PID and remove the cluster's directory
#   scripts/pg.sh status  # exit 0 when the server answers
#
# One server, trust authentication, listening on 127.0.0.1 only (and a Unix socket in its own
# directory), its data under $DISKSNAP_PG_DIR: every start is a fresh, empty cluster. As root it
# runs as the `postgres` user (PostgreSQL refuses to run as root); otherwise as the caller.
# fsync is off: a test cluster that dies is thrown away, never recovered, and the tests measure
# the service, not the disk.
#
# Knobs (environment):
#   DISKSNAP_PG_DIR    where the cluster lives                 (/tmp/disksnap-pg)
#   DISKSNAP_PG_PORT   the port on 127.0.0.1                   (15432: not 5432, a system
#                      PostgreSQL's usual port)
#   DISKSNAP_PG_BIN    PostgreSQL's binaries                   (/usr/lib/postgresql/15/bin, else
#                      the newest /usr/lib/postgresql/*/bin)
#
# `start` is idempotent: a server already answering from this directory is left as it is; a
# half-started or dead one is stopped and started afresh.
set -euo pipefail

DIR=${DISKSNAP_PG_DIR:-/tmp/disksnap-pg}
PORT=${DISKSNAP_PG_PORT:-15432}
DATA="$DIR/data"
MARK="$DIR/disksnap-pg"
URL="postgres://postgres@127.0.0.1:$PORT/postgres"

log() { echo "pg.sh: $*" >&2; }
die() { log "$*"; exit 1; }

find_bin() {
    if [ -n "${DISKSNAP_PG_BIN:-}" ]; then echo "$DISKSNAP_PG_BIN"; return; fi
    if [ -x /usr/lib/postgresql/15/bin/initdb ]; then echo /usr/lib/postgresql/15/bin; return; fi
    local newest
    newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    echo "$newest"
}

install_pg() {
    local bin
    bin=$(find_bin)
    [ -n "$bin" ] && [ -x "$bin/initdb" ] && return 0
    log "installing: postgresql"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
}

# Run a PostgreSQL binary as the user that owns the cluster.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pid() {
    local p
    [ -f "$DATA/postmaster.pid" ] || return 0
    p=$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null || true)
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
    return 0
}

answering() {
    local bin
    bin=$(find_bin)
    [ -n "$bin" ] && "$bin/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 2 2>/dev/null
}

stop() {
    local p i
    p=$(pid)
    if [ -n "$p" ]; then
        # SIGINT: PostgreSQL's "fast" shutdown (rolls back open transactions, exits at once).
        kill -INT "$p" 2>/dev/null || true
        for i in $(seq 1 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.2
        done
        kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null || true
    fi
    # Only a directory this script made: it holds our marker.
    if [ -d "$DIR" ]; then
        if [ -f "$MARK" ]; then
            rm -rf "$DIR"
        elif [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
            die "$DIR exists and was not made by pg.sh; not removing it"
        fi
    fi
}

start() {
    if [ -f "$MARK" ] && [ -n "$(pid)" ] && answering; then
        log "already running at 127.0.0.1:$PORT ($DIR)"
        return 0
    fi
    install_pg
    stop
    local bin t0
    bin=$(find_bin)
    t0=$(date +%s.%N)
    mkdir -p "$DIR"
    echo "made by scripts/pg.sh; removed by 'pg.sh stop'" >"$MARK"
    [ "$(id -u)" = 0 ] && chown -R postgres: "$DIR"
    as_owner "$bin/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
        || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
    as_owner "$bin/pg_ctl" -D "$DATA" -w -t 60 -l "$DIR/server.log" \
        -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null || { tail -n 20 "$DIR/server.log" >&2; die "the server did not start"; }
    log "PostgreSQL up at 127.0.0.1:$PORT in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}') s ($DIR)"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) echo "export DISKSNAP_TEST_PG_URL=$URL" ;;
    status) [ -f "$MARK" ] && [ -n "$(pid)" ] && answering || exit 1 ;;
    *) die "usage: $0 start|stop|env|status" ;;
esac
