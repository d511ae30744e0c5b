#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the test peers and extras, starts a throwaway
# PostgreSQL for the storage tests and a throwaway Redis for the cluster tests, runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh --test
eval "$(bash scripts/start_postgres.sh)"
eval "$(bash scripts/start_redis.sh)"

set +e
.venv/bin/python -m pytest -p no:cacheprovider -rsfE "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
