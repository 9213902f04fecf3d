package policy

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Quantity is a decimal number as the HPA's resource.Quantity writes it: "5", "0.5", "500m",
// "1.5k", "2Gi". It keeps the exact decimal, so that MilliValue rounds as the HPA's
// Quantity.MilliValue does (up, to the next thousandth) with no binary floating-point error.
type Quantity struct {
	text  string
	value float64
	milli int64
}

var quantityPattern = regexp.MustCompile(`^([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$`)

var quantitySuffixes = map[string]*big.Rat{
	"":   big.NewRat(1, 1),
	"n":  big.NewRat(1, 1_000_000_000),
	"u":  big.NewRat(1, 1_000_000),
	"m":  big.NewRat(1, 1_000),
	"k":  big.NewRat(1_000, 1),
	"M":  big.NewRat(1_000_000, 1),
	"G":  big.NewRat(1_000_000_000, 1),
	"T":  big.NewRat(1_000_000_000_000, 1),
	"P":  big.NewRat(1_000_000_000_000_000, 1),
	"E":  big.NewRat(1_000_000_000_000_000_000, 1),
	"Ki": big.NewRat(1<<10, 1),
	"Mi": big.NewRat(1<<20, 1),
	"Gi": big.NewRat(1<<30, 1),
	"Ti": big.NewRat(1<<40, 1),
	"Pi": big.NewRat(1<<50, 1),
	"Ei": big.NewRat(1<<60, 1),
}

// ParseQuantity parses a number with an optional SI or binary suffix.
func ParseQuantity(s string) (Quantity, error) {
	m := quantityPattern.FindStringSubmatch(s)
	if m == nil {
		return Quantity{}, fmt.Errorf("%q is not a number (a quantity such as 5, 0.5, 500m or 2k)", s)
	}
	r, ok := new(big.Rat).SetString(m[1])
	if !ok {
		return Quantity{}, fmt.Errorf("%q is not a number", s)
	}
	r.Mul(r, quantitySuffixes[m[2]])
	milli := new(big.Rat).Mul(r, big.NewRat(1000, 1))
	// Ceil, as resource.Quantity.MilliValue rounds up.
	q, rem := new(big.Int).QuoRem(milli.Num(), milli.Denom(), new(big.Int))
	if rem.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return Quantity{}, fmt.Errorf("%q is out of range", s)
	}
	f, _ := r.Float64()
	return Quantity{text: s, value: f, milli: q.Int64()}, nil
}

// MustQuantity is ParseQuantity for constants; it panics on a malformed quantity.
func MustQuantity(s string) Quantity {
	q, err := ParseQuantity(s)
	if err != nil {
		panic(err)
	}
	return q
}

// Float64 returns the quantity as a float.
func (q Quantity) Float64() float64 { return q.value }

// MilliValue returns the quantity in thousandths, rounded up (resource.Quantity.MilliValue).
func (q Quantity) MilliValue() int64 { return q.milli }

// String returns the quantity as written.
func (q Quantity) String() string { return q.text }

// IsZero reports whether the quantity is unset.
func (q Quantity) IsZero() bool { return q.text == "" }

// UnmarshalYAML accepts a YAML number or string.
func (q *Quantity) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a number, got a %s", nodeKindName(n.Kind))
	}
	p, err := ParseQuantity(n.Value)
	if err != nil {
		return err
	}
	*q = p
	return nil
}

// MarshalYAML writes the quantity as written.
func (q Quantity) MarshalYAML() (any, error) { return q.text, nil }

// MarshalJSON writes the quantity as a JSON number.
func (q Quantity) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, q.value, 'g', -1, 64), nil
}

func nodeKindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	}
	return "document"
}

// milliFloor converts a sample to thousandths, rounding down as the HPA's metrics pipeline
// does (a custom-metrics adapter writes int64(value*1000) milli-units). A product within
// 1e-9 (relative) of a whole thousandth counts as that thousandth, so that a sample written as
// the decimal 4.1 becomes 4100 and not 4099 through binary rounding.
func milliFloor(v float64) int64 {
	m := v * 1000
	r := math.Round(m)
	if math.Abs(m-r) <= 1e-9*math.Max(1, math.Abs(m)) {
		return int64(r)
	}
	return int64(math.Floor(m))
}
