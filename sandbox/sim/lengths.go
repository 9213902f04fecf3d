package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Request is one request's size: the tokens of its prompt and of its output.
type Request struct {
	Prompt, Output int
}

// Lengths are the request sizes the simulated servers draw from, each equally likely.
type Lengths []Request

// Mean returns the mean prompt and output tokens. ok is false for no requests.
func (l Lengths) Mean() (prompt, output float64, ok bool) {
	if len(l) == 0 {
		return 0, 0, false
	}
	for _, r := range l {
		prompt += float64(r.Prompt)
		output += float64(r.Output)
	}
	n := float64(len(l))
	return prompt / n, output / n, true
}

// fit returns the lengths as a server of context length maxLen admits them: a prompt
// keeps room for one output token, and the output stops at the context length (as a request
// without max_tokens does on vLLM and TGI). Every request has at least one prompt and
// one output token: a server emits at least one token (the prefill's).
func (l Lengths) fit(maxLen int) Lengths {
	out := make(Lengths, len(l))
	for i, r := range l {
		p := min(max(r.Prompt, 1), maxLen-1)
		out[i] = Request{Prompt: p, Output: min(max(r.Output, 1), maxLen-p)}
	}
	return out
}

// DefaultLengths is the request sizes used without a file: 1000 equally likely prompt and
// output lengths at the quantiles of two log-normal distributions (prompts: median 1024
// tokens, sigma 1; outputs: median 128, sigma 0.8), paired by a fixed stride so that the
// two are uncorrelated. Means before fitting to a context length: about 1690 and 176
// tokens, of the order of a chat workload (the shared Azure conversation trace has 1155
// and 211).
func DefaultLengths() Lengths {
	const n = 1000
	q := func(i int, median, sigma float64) int {
		z := math.Sqrt2 * math.Erfinv(2*(float64(i)+0.5)/n-1)
		return int(math.Round(median * math.Exp(sigma*z)))
	}
	l := make(Lengths, n)
	for i := range l {
		// 617 is coprime with 1000: output quantile j = 617*i mod 1000 visits each once.
		l[i] = Request{Prompt: q(i, 1024, 1), Output: q(617*i%n, 128, 0.8)}
	}
	return l
}

// ReadLengths reads request sizes from a CSV whose header names the columns
// ContextTokens and GeneratedTokens (the Azure LLM inference traces'; other columns are
// ignored). Counts must be non-negative integers.
func ReadLengths(r io.Reader) (Lengths, error) {
	sc := bufio.NewScanner(r)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read lengths header: %w", err)
		}
		return nil, errors.New("read lengths: empty input")
	}
	header := strings.Split(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "\ufeff"), ",")
	ctx, gen := -1, -1
	for i, h := range header {
		switch strings.TrimSpace(h) {
		case "ContextTokens":
			ctx = i
		case "GeneratedTokens":
			gen = i
		}
	}
	if ctx < 0 || gen < 0 {
		return nil, fmt.Errorf("read lengths header: want columns ContextTokens and GeneratedTokens, got %q", sc.Text())
	}
	var l Lengths
	line := 1
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		f := strings.Split(text, ",")
		if len(f) != len(header) {
			return nil, fmt.Errorf("read lengths line %d: want %d columns, got %d", line, len(header), len(f))
		}
		p, perr := strconv.Atoi(strings.TrimSpace(f[ctx]))
		o, oerr := strconv.Atoi(strings.TrimSpace(f[gen]))
		if perr != nil || oerr != nil || p < 0 || o < 0 {
			return nil, fmt.Errorf("read lengths line %d: ContextTokens %q and GeneratedTokens %q must be non-negative integers", line, f[ctx], f[gen])
		}
		l = append(l, Request{Prompt: p, Output: o})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read lengths line %d: %w", line+1, err)
	}
	if len(l) == 0 {
		return nil, errors.New("read lengths: no requests")
	}
	return l, nil
}

// ReadLengthsFile reads request sizes from the file at path (see ReadLengths).
func ReadLengthsFile(path string) (Lengths, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open lengths %s: %w", path, err)
	}
	defer f.Close()
	l, err := ReadLengths(f)
	if err != nil {
		return nil, fmt.Errorf("read lengths %s: %w", path, err)
	}
	return l, nil
}
