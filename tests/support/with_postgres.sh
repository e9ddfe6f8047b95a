#!/bin/sh
# Run a command with a throw-away PostgreSQL cluster from Debian's packages (issue #18):
# initdb in a temporary folder, the server on a Unix socket only (no TCP port), fsync off, and
# EMS_TEST_POSTGRES_URL pointing at it; the cluster is stopped and removed when the command
# ends, whatever its result. As root the server runs as the `postgres` user (it refuses root).
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "with_postgres: no PostgreSQL server found (make postgres installs Debian's)" >&2
    exit 1
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/ems-pg.XXXXXX")
as_owner() { "$@"; }
if [ "$(id -u)" = 0 ]; then
    chown postgres "$dir"
    # from / : the postgres user may not enter the folder make runs in
    as_owner() { (cd / && runuser -u postgres -- "$@"); }
fi
stop() {
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT INT TERM
as_owner "$bin/initdb" -D "$dir/data" -U ems --auth=trust -E UTF8 --no-instructions >/dev/null
as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-k $dir -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null
as_owner "$bin/createdb" -h "$dir" -U ems ems
EMS_TEST_POSTGRES_URL="postgresql+psycopg://ems@/ems?host=$dir"
export EMS_TEST_POSTGRES_URL
"$@"
