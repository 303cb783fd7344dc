#!/usr/bin/env bash
# tests/test_postfix.py runs a private Postfix instance (its own config, queue and port) in front of
# `abuso serve`; the package is installed unconfigured, so no system MTA is set up or started.
set -euo pipefail
if ! command -v postfix >/dev/null 2>&1 && [ ! -x /usr/sbin/postfix ]; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postfix
fi
