#!/usr/bin/env bash
# tests/test_mailer.py: the `sendmail -t -oi` test needs a real sendmail-compatible program that can be
# pointed at the test SMTP server (msmtp; the plain package, so that no installed MTA is replaced), and
# the STARTTLS tests make their certificate with openssl when the cryptography package is missing.
set -euo pipefail
need=()
command -v msmtp >/dev/null 2>&1 || need+=(msmtp)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
