#!/bin/sh
# The image's HEALTHCHECK: GET <path> (argument 1, /api/health) on the daemon's own status API.
# Exits 0 on 200 and 1 otherwise (503 when something needs a person, or no answer at all): the
# only two statuses a HEALTHCHECK may return (curl's own, e.g. 22 or 7, are reserved there).
#
# The default bind (127.0.0.1, plain HTTP) needs nothing. A daemon serving TLS (any other bind)
# is asked by the name its certificate carries, resolved to loopback, and the certificate is
# verified: set WARDEN_HEALTH_TLS_NAME (a name in the certificate and in daemon.http.allowedHosts)
# and WARDEN_HEALTH_CA (the CA that issued it; default /etc/warden/tls/ca.pem).
set -eu
path="${1:-/api/health}"
port="${WARDEN_HEALTH_PORT:-7480}"
if [ -n "${WARDEN_HEALTH_TLS_NAME:-}" ]; then
  curl --fail --silent --show-error --max-time 4 --output /dev/null \
    --cacert "${WARDEN_HEALTH_CA:-/etc/warden/tls/ca.pem}" \
    --resolve "${WARDEN_HEALTH_TLS_NAME}:${port}:127.0.0.1" \
    "https://${WARDEN_HEALTH_TLS_NAME}:${port}${path}" || exit 1
  exit 0
fi
curl --fail --silent --show-error --max-time 4 --output /dev/null "http://127.0.0.1:${port}${path}" || exit 1
