#!/usr/bin/env bash
# Starts a throwaway Redis for the test suite and prints, on stdout, the line
#   export TALKWIRE_TEST_REDIS_URL=redis://127.0.0.1:PORT/0
# for `eval "$(scripts/start_redis.sh)"`. Everything else goes to stderr.
#
# The server lives under $TALKWIRE_REDIS_DIR (default /tmp/talkwire-redis), listens on 127.0.0.1 only on a free
# port, keeps nothing on disk (no RDB snapshots, no append-only file: it holds test data only) and runs as a
# daemon. Idempotent: a second run reuses the running server. Tests keep apart by a key prefix of their own.
# Stop it with: kill "$(cat /tmp/talkwire-redis/redis.pid)"
set -euo pipefail

BASE=${TALKWIRE_REDIS_DIR:-/tmp/talkwire-redis}

if ! command -v redis-server >/dev/null 2>&1; then
  echo "start_redis: Redis is not installed (apt-get install -y redis-server)" >&2
  exit 1
fi

mkdir -p "$BASE"

running() { [ -f "$BASE/redis.pid" ] && [ -f "$BASE/port" ] && kill -0 "$(cat "$BASE/redis.pid")" 2>/dev/null; }

if ! running; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "$PORT" > "$BASE/port"
  echo "start_redis: starting on 127.0.0.1:$PORT" >&2
  redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --dir "$BASE" --pidfile "$BASE/redis.pid" --logfile "$BASE/server.log" >&2
  for _ in $(seq 1 100); do
    redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
fi
PORT=$(cat "$BASE/port")

if ! redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1; then
  echo "start_redis: the server on 127.0.0.1:$PORT does not answer; see $BASE/server.log" >&2
  exit 1
fi

echo "export TALKWIRE_TEST_REDIS_URL=redis://127.0.0.1:$PORT/0"
