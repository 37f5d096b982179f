#!/usr/bin/env bash
# Kustomize v5.5.0 into <tools>/bin, unless kubectl (which embeds it: `kubectl kustomize`) is on PATH.
set -euo pipefail
tools=${1:?usage: kustomize.sh <absolute path of .cache/tools>}
version=v5.5.0
if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  exit 0
fi
if [[ -x $tools/bin/kustomize ]] && go version -m "$tools/bin/kustomize" 2>/dev/null |
  grep -Eq "^[[:space:]]+mod[[:space:]]+sigs.k8s.io/kustomize/kustomize/v5[[:space:]]+$version[[:space:]]"; then
  exit 0
fi
command -v go >/dev/null || { echo "kustomize.sh: neither kubectl nor Go (to install kustomize) is on PATH" >&2; exit 1; }
GOBIN=$tools/bin go install "sigs.k8s.io/kustomize/kustomize/v5@$version"
