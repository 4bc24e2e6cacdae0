#!/usr/bin/env bash
# Fails when the tests left temp directories behind. Every test temp directory starts with
# "warden-" (test/harness/temp-dir.ts, the harness' servers); the tests remove theirs, even
# when they fail.
#   scripts/temp-leftovers.sh snapshot FILE   record the warden-* entries in the temp dir now
#   scripts/temp-leftovers.sh check FILE      fail, listing them, if there are new ones since
set -euo pipefail
tmp="${TMPDIR:-/tmp}"
# warden-<uid> is not a leftover: it is the runtime directory of owner records (src/util/runtime-dir.ts).
entries() { find "$tmp" -mindepth 1 -maxdepth 1 -name 'warden-*' ! -regex '.*/warden-[0-9]+' -printf '%f\n' | sort; }
case "${1:-}" in
  snapshot) entries > "$2" ;;
  check)
    left="$(comm -13 "$2" <(entries))"
    if [ -n "$left" ]; then
      echo "The tests left these temp entries in $tmp:" >&2
      echo "$left" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 snapshot|check FILE" >&2
    exit 2
    ;;
esac
