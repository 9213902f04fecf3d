#!/usr/bin/env bash
# Fails when the pure packages (policy/, forecast/, engine/, alloc/) import Kubernetes, Prometheus or viper
# packages, or read the wall clock. Decision code takes `now` as an argument. hpaimport/ parses
# and translates only: it may use the Kubernetes API types and the PromQL parser, but no
# client (client-go, Prometheus' HTTP client), no viper, and no clock.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
for dir in policy forecast engine alloc; do
  bad=$(go list -deps -test "./$dir/..." | grep -E '^(k8s\.io/|sigs\.k8s\.io/|github\.com/prometheus/|github\.com/spf13/viper)' || true)
  if [ -n "$bad" ]; then
    echo "check-purity: $dir/ must not depend on these packages:" >&2
    echo "$bad" | sed 's/^/  /' >&2
    status=1
  fi
  clock=$(grep -rnE '\btime\.Now\b' --include='*.go' "$dir" | grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' || true)
  if [ -n "$clock" ]; then
    echo "check-purity: $dir/ must not read the wall clock (take now as an argument):" >&2
    echo "$clock" | sed 's/^/  /' >&2
    status=1
  fi
done

bad=$(go list -deps -test ./hpaimport/... | grep -E '^(k8s\.io/client-go|github\.com/prometheus/client_golang/api|github\.com/spf13/viper)' || true)
if [ -n "$bad" ]; then
  echo "check-purity: hpaimport/ must not depend on these packages:" >&2
  echo "$bad" | sed 's/^/  /' >&2
  status=1
fi
clock=$(grep -rnE '\btime\.Now\b' --include='*.go' hpaimport | grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' || true)
if [ -n "$clock" ]; then
  echo "check-purity: hpaimport/ must not read the wall clock:" >&2
  echo "$clock" | sed 's/^/  /' >&2
  status=1
fi
exit $status
