#!/usr/bin/env bash
# build.sh builds the pinned tools (the sandbox's control plane, etcd, kwok, Prometheus,
# Karpenter with its kwok provider; kubectl and helm for the deploy/ tests)
# into a cache folder outside the clone, one folder per tools module keyed by the hash of
# its go.mod and go.sum, and links them into BINDIR (default: bin/ at the repo root).
#
# A second run with the same tools modules builds nothing. Set PRESCALE_TOOLS_CACHE
# to move the cache (default: ${XDG_CACHE_HOME:-$HOME/.cache}/prescale).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
bindir="${BINDIR:-$root/bin}"
cache_root="${PRESCALE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prescale}"

mkdir -p "$bindir"

# Each tools module has its own cache folder, keyed by the hash of its go.mod and go.sum:
# changing one module (or adding a tool to it) rebuilds only what is missing there.
cache_for() {
	local dir="$1" hash
	hash="$(cd "$here/$dir" && cat go.mod go.sum | sha256sum | cut -c1-16)"
	echo "$cache_root/$dir-$hash"
}

k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean"

# name|module folder|package|ldflags
tools=(
	"etcd|etcd|go.etcd.io/etcd/server/v3|-s -w"
	"kwok|kwok|sigs.k8s.io/kwok/cmd/kwok|-s -w"
	"kube-apiserver|kube|k8s.io/kubernetes/cmd/kube-apiserver|$k8s_ldflags"
	"kube-controller-manager|kube|k8s.io/kubernetes/cmd/kube-controller-manager|$k8s_ldflags"
	"kube-scheduler|kube|k8s.io/kubernetes/cmd/kube-scheduler|$k8s_ldflags"
	"prometheus|prometheus|github.com/prometheus/prometheus/cmd/prometheus|-s -w"
	"promtool|prometheus|github.com/prometheus/prometheus/cmd/promtool|-s -w"
	"kubectl|kubectl|k8s.io/kubernetes/cmd/kubectl|$k8s_ldflags"
	"helm|helm|helm.sh/helm/v3/cmd/helm|-s -w"
	"karpenter|karpenter|sigs.k8s.io/karpenter/kwok|-s -w"
)
total=$((${#tools[@]} + 2))

# A tools module may ask for a newer Go than the machine's (tools/karpenter: its go line
# is sigs.k8s.io/karpenter's, 1.26.9): the go command then fetches that toolchain from the
# module proxy. Modules whose go line the local Go satisfies build with the local Go.
export GOTOOLCHAIN=auto

i=0
for t in "${tools[@]}"; do
	IFS='|' read -r name dir pkg ldflags <<<"$t"
	i=$((i + 1))
	cache="$(cache_for "$dir")"
	mkdir -p "$cache"
	if [[ -x "$cache/$name" ]]; then
		echo "tools: $name ($i/$total) up to date"
	else
		start=$(date +%s)
		printf 'tools: building %s (%d/%d)... ' "$name" "$i" "$total"
		if ! (cd "$here/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$cache/$name.tmp" "$pkg") >"$cache/$name.log" 2>&1; then
			echo "FAILED"
			tail -n 30 "$cache/$name.log" >&2
			exit 1
		fi
		mv "$cache/$name.tmp" "$cache/$name"
		echo "done in $(($(date +%s) - start))s"
	fi
	ln -sfn "$cache/$name" "$bindir/$name"
done

# kwok's stage YAMLs (node and pod lifecycles) ship in its module.
i=$((i + 1))
cache="$(cache_for kwok)"
if [[ -d "$cache/kwok-stages" ]]; then
	echo "tools: kwok stages ($i/$total) up to date"
else
	printf 'tools: copying kwok stages (%d/%d)... ' "$i" "$total"
	moddir="$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
	rm -rf "$cache/kwok-stages.tmp"
	cp -r "$moddir/kustomize/stage" "$cache/kwok-stages.tmp"
	chmod -R u+w "$cache/kwok-stages.tmp"
	mv "$cache/kwok-stages.tmp" "$cache/kwok-stages"
	echo "done"
fi
ln -sfn "$cache/kwok-stages" "$bindir/kwok-stages"

# Karpenter's CRDs ship in its module: NodePool, NodeClaim, NodeOverlay and CapacityBuffer as
# its kwok chart installs them (with the karpenter.kwok.sh label rules), and KWOKNodeClass.
i=$((i + 1))
cache="$(cache_for karpenter)"
if [[ -d "$cache/karpenter-crds" ]]; then
	echo "tools: karpenter CRDs ($i/$total) up to date"
else
	printf 'tools: copying karpenter CRDs (%d/%d)... ' "$i" "$total"
	moddir="$(cd "$here/karpenter" && go list -m -f '{{.Dir}}' sigs.k8s.io/karpenter)"
	rm -rf "$cache/karpenter-crds.tmp"
	mkdir -p "$cache/karpenter-crds.tmp"
	cp "$moddir"/kwok/charts/crds/*.yaml "$moddir"/kwok/apis/crds/*.yaml "$cache/karpenter-crds.tmp/"
	chmod -R u+w "$cache/karpenter-crds.tmp"
	mv "$cache/karpenter-crds.tmp" "$cache/karpenter-crds"
	echo "done"
fi
ln -sfn "$cache/karpenter-crds" "$bindir/karpenter-crds"
echo "tools: all in $bindir (cache $cache_root)"
