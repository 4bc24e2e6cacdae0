#!/usr/bin/env bash
# The whole test suite: unit and integration tests against real PostgreSQL, Redis and S3-compatible
# servers that the harness starts on free loopback ports. Pass file paths to run a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-test-deps.sh
if [ "$#" -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find test packages/*/test -name '*.test.ts' | sort)
fi
exec node --import tsx --test --test-concurrency="${WARDEN_TEST_CONCURRENCY:-3}" --test-timeout=600000 "${files[@]}"
