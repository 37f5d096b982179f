#!/usr/bin/env bash
# wrk (HTTP load generator) from Debian's package (4.1.0 on bookworm): the ingest benchmark drives it.
set -euo pipefail
if command -v wrk >/dev/null; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends wrk >/dev/null
