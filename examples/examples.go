// Package examples holds the shipped policy files (servers/ per model server; policy.yaml,
// slo-policy.yaml, zero-policy.yaml, backtest-policy.yaml) and embeds the ones that code
// runs as shipped: the demo reads VLLM, so that it cannot drift from the file users copy.
package examples

import _ "embed"

// VLLM is servers/vllm.yaml, the vLLM policy, as shipped.
//
//go:embed servers/vllm.yaml
var VLLM []byte
