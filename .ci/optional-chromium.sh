#!/usr/bin/env bash
# tests/test_stats.py looks at `abuso stats -f html` the way a person would: in headless Chromium.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium
fi
