#!/usr/bin/env bash
# Refreshes the dashboard screenshots in docs/images/ (shown by docs/dashboard.md): runs the
# browser test, which writes them where WARDEN_DASHBOARD_SCREENSHOTS points (else a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/images
WARDEN_DASHBOARD_SCREENSHOTS=docs/images bash scripts/test.sh test/server/dashboard-browser.test.ts
