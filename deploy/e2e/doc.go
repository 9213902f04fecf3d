// Package e2e checks what deploy/ ships against the sandbox's real kube-apiserver: the
// kustomize overlay and the Helm chart pass server-side dry-run apply, the service account's
// rights are exactly those `prescale run` needs (kubectl auth can-i, both ways), and
// `prescale run`, holding only a token of that service account, scales a workload, while the
// admission policy refuses that token every change of a target but its annotation (on
// Deployments and on a custom resource added as an extra scale target), and the namespaced
// variants grant the writes in their target namespaces only. It also checks that every
// variant's RBAC and admission policy name the same resources, lints the chart, checks the
// alert rules with promtool and parses the Grafana dashboard.
// The tests run with the build tag e2e and PRESCALE_SANDBOX_BIN (the folder holding kubectl,
// helm, promtool and the sandbox's tools: make e2e), and fail, never skip, without them.
package e2e
