#!/usr/bin/env bash
# Installs the servers the test suite starts (PostgreSQL server binaries, redis-server, the `age` tool for the encryption interoperability tests, zsh for the completion test, Prometheus, Alertmanager and the PostgreSQL/Redis/node exporters for the monitoring tests, chromium for the dashboard test, Patroni and etcd for the HA tests, systemd-analyze for the systemd unit's checks) when they
# are missing, from Debian's packages. Needs root (or passwordless sudo) on a fresh machine.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-check-rdb >/dev/null 2>&1 || need+=(redis-tools)   # verify checks Redis backups with it
command -v age >/dev/null 2>&1 || need+=(age)
command -v zsh >/dev/null 2>&1 || need+=(zsh)   # the zsh completion test
# the monitoring tests: promtool and a real Prometheus, Alertmanager and the three exporters
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v prometheus-postgres-exporter >/dev/null 2>&1 || need+=(prometheus-postgres-exporter)
command -v prometheus-redis-exporter >/dev/null 2>&1 || need+=(prometheus-redis-exporter)
command -v prometheus-node-exporter >/dev/null 2>&1 || need+=(prometheus-node-exporter)
command -v patroni >/dev/null 2>&1 || need+=(patroni)   # the HA tests: a real 3-node Patroni cluster
[ -x /usr/bin/etcd ] || need+=(etcd-server)   # Patroni's DCS in the HA tests
[ -x /usr/bin/chromium ] || need+=(chromium)   # the dashboard's browser test (playwright-core drives it)
# the systemd unit's checks (`systemd-analyze verify`/`security --offline` read unit files; no
# running systemd needed, so a container works too)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ "${#need[@]}" -eq 0 ] && exit 0
echo "installing Debian packages the tests need: ${need[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
