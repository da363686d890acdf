#!/usr/bin/env bash
# Build the pinned helm binary from the Go module proxy into .cache/ (no Debian package).
#   helm/install-helm.sh            -> prints the path of the helm binary
# Cached: a second run returns at once. Everything (modules, build cache, binary) stays
# under .cache/, so CI can cache that one directory. Needs `go` (>= 1.26, or a Go that
# can fetch that toolchain: GOTOOLCHAIN=auto).
# Cold cost measured on the 2-core dev machine while shared with other builds (load ~6):
# 5m07s wall (3m11s CPU) including module downloads; 3m07s with the modules cached.
# See docs/adr/0009-deployment-artifacts-validated-offline.md.
set -euo pipefail
HELM_VERSION="v3.22.0"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.cache"
bin_dir="$cache/helm/$HELM_VERSION"
if [ ! -x "$bin_dir/helm" ]; then
  command -v go >/dev/null 2>&1 || { echo "install-helm: 'go' is not on PATH" >&2; exit 1; }
  mkdir -p "$bin_dir" "$cache/go"
  (
    flock 9
    if [ ! -x "$bin_dir/helm" ]; then
      GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build" GOPATH="$cache/go/path" \
        GOFLAGS="-mod=mod -buildvcs=false -trimpath" GOBIN="$bin_dir.tmp" CGO_ENABLED=0 \
        go install -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
      mv "$bin_dir.tmp/helm" "$bin_dir/helm"
      rmdir "$bin_dir.tmp"
      # The build cache (~1.4 GB) only speeds up a rebuild of the same version: drop it.
      GOCACHE="$cache/go/build" go clean -cache
    fi
  ) 9>"$cache/go/.install-helm.lock"
fi
echo "$bin_dir/helm"
