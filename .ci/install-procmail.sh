#!/usr/bin/env bash
# tests/test_procmail.py runs README's ~/.procmailrc recipe through a real procmail.
set -euo pipefail
if ! command -v procmail >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends procmail
fi
