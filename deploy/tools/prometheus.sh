#!/usr/bin/env bash
# Prometheus and promtool from Debian's packages (2.42 on bookworm): the rule checks and the live dashboard check.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
