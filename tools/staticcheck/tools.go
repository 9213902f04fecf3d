//go:build tools

// Package tools pins staticcheck: make check runs it (hack/staticcheck.sh) at the version
// this module requires, built once into the tools cache.
package tools

import _ "honnef.co/go/tools/cmd/staticcheck"
