#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the test peers and extras, starts a throwaway
# PostgreSQL for the storage tests and a throwaway Redis for the cluster tests, runs ruff and mypy over the product
# packages, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh --test
eval "$(bash scripts/start_postgres.sh)"
eval "$(bash scripts/start_redis.sh)"

set +e
echo "==> ruff (product packages and scripts)"
.venv/bin/ruff check media signalling agent_runtime presets control_api loadtest scripts
lint=$?
echo "==> mypy (the packages listed in pyproject.toml)"
.venv/bin/mypy
types=$?
echo "==> pytest"
# Two workers (pytest-xdist), each test module kept on one worker: the suite mostly waits on peers and timers,
# so two at once halve its wall time on 2 cores. `-n 0` among the extra arguments runs it in one process.
.venv/bin/python -m pytest -p no:cacheprovider -rsfE -n 2 --dist loadfile "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
if [ "$lint" -ne 0 ] || [ "$types" -ne 0 ]; then
  echo "ruff or mypy reported problems (above): that is a failure here" >&2
  [ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
