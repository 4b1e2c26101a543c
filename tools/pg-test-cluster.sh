#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, on 127.0.0.1 only, entirely inside one directory.
#
#   tools/pg-test-cluster.sh start DIR    create the cluster in DIR (must be missing or empty),
#                                         start it on a free port and print its URL on stdout:
#                                         postgres://swapline:PASSWORD@127.0.0.1:PORT/swapline
#   tools/pg-test-cluster.sh stop DIR     stop it (fast, then immediate) and remove DIR
#   tools/pg-test-cluster.sh pause DIR    stop the server (pg_ctl stop -m fast), keep DIR and data
#   tools/pg-test-cluster.sh resume DIR   start it again on the same port
#   tools/pg-test-cluster.sh restart DIR  pause, then resume
#   tools/pg-test-cluster.sh url DIR      print the URL again
#   tools/pg-test-cluster.sh status DIR   exit 0 when it accepts connections
#
# The cluster has a role `swapline` (LOGIN, CREATEDB, a random password) owning a database
# `swapline`. TCP connections (127.0.0.1 only) need that password (scram-sha-256), so tests
# exercise the same authentication production does; the superuser `postgres` may connect
# without one over the Unix socket in DIR/sock. Durability is off (fsync, full_page_writes,
# synchronous_commit): a crash loses the cluster, which is fine for tests and nothing else.
#
# initdb refuses to run as root, so as root every server-side command runs as the `postgres`
# system user, who then owns DIR. Debian's own cluster (`main` on 5432, if any) is not used.
#
# Environment: SWAPLINE_PG_BIN  server binaries (default /usr/lib/postgresql/15/bin, else the
#              newest /usr/lib/postgresql/*/bin).
set -euo pipefail

die() { echo "pg-test-cluster: $*" >&2; exit 1; }
log() { echo "pg-test-cluster: $*" >&2; }

(($# == 2)) || die "usage: $0 start|stop|pause|resume|restart|url|status DIR"
command="$1"
dir="$2"
[[ "$dir" == /* ]] || dir="$PWD/$dir"

pg_bin="${SWAPLINE_PG_BIN:-}"
if [[ -z "$pg_bin" ]]; then
    pg_bin=/usr/lib/postgresql/15/bin
    if [[ ! -x "$pg_bin/initdb" ]]; then
        newest="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
        [[ -n "$newest" ]] && pg_bin="$newest"
    fi
fi
[[ -x "$pg_bin/initdb" && -x "$pg_bin/pg_ctl" && -x "$pg_bin/psql" ]] \
    || die "no PostgreSQL server binaries in $pg_bin (install postgresql-15: tools/install-deps.sh)"

data="$dir/data"
sock="$dir/sock"

# Server-side commands run as `postgres` when we are root (initdb and postgres refuse root).
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

url() {
    printf 'postgres://swapline:%s@127.0.0.1:%s/swapline\n' "$(cat "$dir/password")" "$(cat "$dir/port")"
}

accepting() {
    "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$(cat "$dir/port")" -t 2
}

running() {
    [[ -f "$data/postmaster.pid" ]] && as_owner "$pg_bin/pg_ctl" status -D "$data" >/dev/null 2>&1
}

server_start() {
    local port
    port="$(cat "$dir/port")"
    # -w waits until the server accepts connections (or fails); the log keeps the reason.
    if ! as_owner "$pg_bin/pg_ctl" start -w -t 60 -D "$data" -l "$dir/postgres.log" \
        -o "-p $port -k $sock -c listen_addresses=127.0.0.1" >/dev/null; then
        echo "--- $dir/postgres.log (tail) ---" >&2
        tail -n 30 "$dir/postgres.log" >&2 || true
        return 1
    fi
    local deadline=$((SECONDS + 30))
    until accepting; do
        ((SECONDS < deadline)) || { log "server on port $port does not accept connections"; return 1; }
        sleep 0.1
    done
}

server_stop() {
    running || return 0
    as_owner "$pg_bin/pg_ctl" stop -D "$data" -m fast -w -t 30 >/dev/null 2>&1 \
        || as_owner "$pg_bin/pg_ctl" stop -D "$data" -m immediate -w -t 30 >/dev/null 2>&1 \
        || { log "could not stop the server in $data"; return 1; }
}

start() {
    if [[ -e "$dir" ]] && [[ -n "$(ls -A "$dir")" ]]; then
        die "$dir exists and is not empty"
    fi
    mkdir -p "$dir"
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "no 'postgres' system user (install postgresql-15)"
        chown postgres: "$dir"
        chmod 700 "$dir"
        runuser -u postgres -- test -w "$dir" \
            || die "user postgres cannot reach $dir: every parent directory must be searchable by it"
    fi
    as_owner mkdir -p "$sock"

    local password
    password="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
    # Written by the owner so that the files live and die with the cluster; 0600 keeps the
    # password to the owner (and root).
    as_owner sh -c 'umask 077; printf "%s" "$1" > "$2"' sh "$password" "$dir/password"

    log "initdb in $data"
    if ! as_owner "$pg_bin/initdb" -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        die "initdb failed"
    fi
    # Only loopback TCP, only with a password; the socket in DIR/sock is for the superuser.
    as_owner sh -c 'cat > "$1"' sh "$data/pg_hba.conf" <<'EOF'
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 trust
local   all       all                      scram-sha-256
host    all       all       127.0.0.1/32   scram-sha-256
EOF
    as_owner sh -c 'cat >> "$1"' sh "$data/postgresql.conf" <<'EOF'

# pg-test-cluster.sh: a throwaway cluster for tests. Speed over durability.
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 64MB
log_min_messages = warning
log_connections = off
EOF

    # A port picked free can be taken before the server binds it; try a few.
    local attempt
    for attempt in 1 2 3 4 5; do
        free_port | as_owner sh -c 'cat > "$1"' sh "$dir/port"
        if server_start; then
            break
        fi
        ((attempt < 5)) || die "the server did not start (see $dir/postgres.log)"
        log "start on port $(cat "$dir/port") failed; trying another port"
    done

    as_owner "$pg_bin/psql" -q -v ON_ERROR_STOP=1 -h "$sock" -p "$(cat "$dir/port")" \
        -U postgres -d postgres -v pw="$password" >/dev/null <<'EOF' \
        || die "could not create the swapline role and database"
CREATE ROLE swapline LOGIN CREATEDB PASSWORD :'pw';
CREATE DATABASE swapline OWNER swapline TEMPLATE template0;
EOF
    log "PostgreSQL $("$pg_bin/postgres" -V | awk '{print $3}') accepting on 127.0.0.1:$(cat "$dir/port") (data in $data)"
    url
}

case "$command" in
    start)
        start
        ;;
    stop)
        [[ -d "$dir" ]] || exit 0
        if [[ -d "$data" ]]; then
            server_stop
        fi
        rm -rf "$dir"
        ;;
    pause)
        [[ -f "$dir/port" ]] || die "no cluster in $dir"
        server_stop
        ;;
    resume)
        [[ -f "$dir/port" ]] || die "no cluster in $dir"
        running || server_start || die "the server did not start again (see $dir/postgres.log)"
        ;;
    restart)
        [[ -f "$dir/port" ]] || die "no cluster in $dir"
        server_stop
        server_start || die "the server did not start again (see $dir/postgres.log)"
        ;;
    url)
        [[ -f "$dir/port" ]] || die "no cluster in $dir"
        url
        ;;
    status)
        [[ -f "$dir/port" ]] || exit 1
        accepting
        ;;
    *)
        die "unknown command '$command' (start|stop|pause|resume|restart|url|status)"
        ;;
esac
