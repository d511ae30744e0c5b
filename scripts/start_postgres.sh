#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the test suite and prints, on stdout, the line
#   export TALKWIRE_TEST_POSTGRES_URL=postgresql+asyncpg://talkwire@127.0.0.1:PORT/talkwire_test
# for `eval "$(scripts/start_postgres.sh)"`. Everything else goes to stderr.
#
# The cluster lives under $TALKWIRE_PG_DIR (default /tmp/talkwire-pg), listens on 127.0.0.1 only on a free
# port, trusts local connections (it holds test data only) and runs with fsync off. Idempotent: a second run
# reuses the running cluster. As root it runs the server as the `postgres` user (PostgreSQL refuses root).
# Stop it with: pg_ctl -D /tmp/talkwire-pg/data stop
set -euo pipefail

BASE=${TALKWIRE_PG_DIR:-/tmp/talkwire-pg}
DATA=$BASE/data
DB=talkwire_test
ROLE=talkwire

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$PGBIN" ]; then
  echo "start_postgres: PostgreSQL is not installed (apt-get install -y postgresql)" >&2
  exit 1
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

running() { as_owner "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

mkdir -p "$BASE"
cd "$BASE"  # the postgres user may not be allowed into the caller's directory
[ "$(id -u)" = 0 ] && chown postgres:postgres "$BASE"

if [ ! -f "$DATA/PG_VERSION" ]; then
  echo "start_postgres: initdb in $DATA" >&2
  as_owner "$PGBIN/initdb" -D "$DATA" -U "$ROLE" --auth=trust --encoding=UTF8 --no-instructions >/dev/null
fi

if ! running; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "$PORT" > "$BASE/port"
  echo "start_postgres: starting on 127.0.0.1:$PORT" >&2
  as_owner "$PGBIN/pg_ctl" -D "$DATA" -l "$BASE/server.log" -w -t 60 start -o \
    "-p $PORT -k $BASE -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >&2
fi
PORT=$(cat "$BASE/port")

if ! as_owner "$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U "$ROLE" -d postgres -tAc \
     "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
  as_owner "$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U "$ROLE" "$DB"
fi

echo "export TALKWIRE_TEST_POSTGRES_URL=postgresql+asyncpg://$ROLE@127.0.0.1:$PORT/$DB"
