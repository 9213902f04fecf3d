package sim

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// upstreamFile is one file of testdata/upstream (its format: testdata/upstream/README.md):
// the header's keys and one block per metric family.
type upstreamFile struct {
	name   string
	header map[string][]string
	blocks []upstreamBlock
}

// upstreamBlock is one metric family's block: each key's values, in order (source and
// note repeat).
type upstreamBlock map[string][]string

func (b upstreamBlock) get(key string) string {
	if v := b[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// readUpstream reads testdata/upstream/<name>: blocks split on blank lines, comment lines
// skipped, the first word of a line the key and the rest its value.
func readUpstream(t *testing.T, name string) upstreamFile {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "upstream", name))
	if err != nil {
		t.Fatalf("open upstream definitions: %v", err)
	}
	defer f.Close()
	u := upstreamFile{name: name}
	var cur upstreamBlock
	flush := func() {
		switch {
		case cur == nil:
		case cur["metric"] != nil:
			u.blocks = append(u.blocks, cur)
		case cur["server"] != nil:
			u.header = cur
		}
		cur = nil
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			flush()
		case strings.HasPrefix(line, "#"):
		default:
			if cur == nil {
				cur = upstreamBlock{}
			}
			k, v, _ := strings.Cut(line, " ")
			cur[k] = append(cur[k], strings.TrimSpace(v))
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	if u.header == nil || len(u.blocks) == 0 {
		t.Fatalf("%s: no header or no metric block", name)
	}
	return u
}

// labels returns a block's label names, and whether the set is open: "engine and one label
// per CacheConfig.metrics_info() key (not enumerated here)" names engine and leaves the
// rest to the server.
func (b upstreamBlock) labels() (names []string, open bool) {
	v := b.get("labels")
	if v == "-" {
		return nil, false
	}
	if head, _, ok := strings.Cut(v, " and "); ok {
		return strings.Split(head, ","), true
	}
	if strings.ContainsAny(v, " ") {
		return nil, true
	}
	return strings.Split(v, ","), false
}

// values returns the values a block lists per label.
func (b upstreamBlock) values() map[string][]string {
	m := map[string][]string{}
	for _, v := range b["values"] {
		l, vs, _ := strings.Cut(v, "=")
		m[l] = strings.Split(vs, "|")
	}
	return m
}

// bucketContext are the server settings bucket formulas depend on.
type bucketContext struct {
	maxModelLen int // vLLM's --max-model-len, TGI's max_total_tokens
}

var (
	formula125     = regexp.MustCompile(`^1-2-5 series up to max_model_len\b`)
	formulaTokens  = regexp.MustCompile(`^\((max_total_tokens|max_input_tokens)/100\)\*k for k = 1\.\.(\d+)$`)
	formulaInteger = regexp.MustCompile(`^1,2,3,\.\.\.,(\d+) \(every integer\)$`)
)

// buckets returns a histogram block's bounds: listed, or computed from the formula the
// file writes with the simulator's settings. Each formula is computed here from the
// file's words, not with the simulator's code.
func (b upstreamBlock) buckets(c bucketContext) ([]float64, error) {
	spec := b.get("buckets")
	switch {
	case formula125.MatchString(spec):
		var out []float64
		for e := 1; e <= c.maxModelLen; e *= 10 {
			for _, m := range []int{1, 2, 5} {
				if m*e <= c.maxModelLen {
					out = append(out, float64(m*e))
				}
			}
		}
		return out, nil
	case formulaTokens.MatchString(spec):
		m := formulaTokens.FindStringSubmatch(spec)
		top := c.maxModelLen // max_total_tokens
		if m[1] == "max_input_tokens" {
			top-- // TGI's max_input_tokens is max_total_tokens - 1 in the simulator
		}
		k, _ := strconv.Atoi(m[2])
		out := make([]float64, k)
		for i := range out {
			out[i] = float64(top) / 100 * float64(i+1) // in f64, as the router computes it
		}
		return out, nil
	case formulaInteger.MatchString(spec):
		n, _ := strconv.Atoi(formulaInteger.FindStringSubmatch(spec)[1])
		out := make([]float64, n)
		for i := range out {
			out[i] = float64(i + 1)
		}
		return out, nil
	}
	return parseFloats(spec)
}

func parseFloats(list string) ([]float64, error) {
	var out []float64
	for _, s := range strings.Split(list, ",") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("bound %q: %w", s, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// upstreamLe returns how the server's library prints each bound in le: the block's le line,
// else its literal buckets line, else the bounds in the header's le-format.
func (u upstreamFile) upstreamLe(b upstreamBlock, bounds []float64) []string {
	if le := b.get("le"); le != "" {
		return strings.Split(le, ",")
	}
	if _, err := parseFloats(b.get("buckets")); err == nil {
		return strings.Split(b.get("buckets"), ",")
	}
	out := make([]string, len(bounds))
	for i, f := range bounds {
		switch strings.Fields(u.header["le-format"][0])[0] {
		case "python-float-repr":
			s := strconv.FormatFloat(f, 'g', -1, 64)
			if !strings.ContainsAny(s, ".e") {
				s += ".0"
			}
			out[i] = s
		case "rust-f64-display":
			out[i] = strconv.FormatFloat(f, 'f', -1, 64)
		default:
			out[i] = strconv.FormatFloat(f, 'g', -1, 64)
		}
	}
	return out
}

// goLe is how client_golang prints a bound in le (expfmt: strconv 'g', shortest).
func goLe(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func TestReadUpstreamKnowsEveryFile(t *testing.T) {
	// Every file the exposition test reads parses, and every histogram's buckets resolve.
	for _, name := range []string{"vllm.txt", "tgi.txt", "sglang.txt", "triton.txt", "dcgm.txt", "gateway.txt"} {
		u := readUpstream(t, name)
		for _, b := range u.blocks {
			if b.get("type") != "histogram" {
				continue
			}
			if _, err := b.buckets(bucketContext{maxModelLen: 8192}); err != nil {
				t.Errorf("%s %s: buckets %q: %v", name, b.get("metric"), b.get("buckets"), err)
			}
		}
	}
	// vllm.txt's own example: with max_model_len 8192, 1,2,5,...,5000.
	for _, b := range readUpstream(t, "vllm.txt").blocks {
		if b.get("metric") == "vllm:request_prompt_tokens" {
			got, _ := b.buckets(bucketContext{maxModelLen: 8192})
			want := []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000}
			if !slices.Equal(got, want) {
				t.Errorf("1-2-5 buckets to 8192 = %v, want %v", got, want)
			}
		}
	}
}
