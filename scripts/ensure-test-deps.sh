#!/usr/bin/env bash
# Installs the servers the test suite starts (PostgreSQL server binaries, redis-server, and the `age` tool for the encryption interoperability tests) when they
# are missing, from Debian's packages. Needs root (or passwordless sudo) on a fresh machine.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v age >/dev/null 2>&1 || need+=(age)
[ "${#need[@]}" -eq 0 ] && exit 0
echo "installing Debian packages the tests need: ${need[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
