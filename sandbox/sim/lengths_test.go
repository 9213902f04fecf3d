package sim

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadLengths(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    Lengths
		wantErr string
	}{
		{name: "the Azure traces' columns", in: "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n2023-11-16 18:15:50.99,396,109\n",
			want: Lengths{{374, 44}, {396, 109}}},
		{name: "columns in any order, with a byte-order mark and CRLF", in: "\ufeffGeneratedTokens,ContextTokens\r\n5,10\r\n",
			want: Lengths{{10, 5}}},
		{name: "a missing column", in: "TIMESTAMP,ContextTokens\n1,2\n", wantErr: "want columns ContextTokens and GeneratedTokens"},
		{name: "a negative count", in: "ContextTokens,GeneratedTokens\n-1,2\n", wantErr: "line 2: ContextTokens \"-1\""},
		{name: "a short row", in: "ContextTokens,GeneratedTokens\n1\n", wantErr: "line 2: want 2 columns, got 1"},
		{name: "no rows", in: "ContextTokens,GeneratedTokens\n", wantErr: "no requests"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ReadLengths(strings.NewReader(c.in))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("ReadLengths error = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadLengths: %v", err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("ReadLengths (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLengthsFit(t *testing.T) {
	// A context of 100 tokens: a prompt keeps room for one output token, an output stops at
	// the context, and an empty prompt or output counts one token.
	got := Lengths{{50, 20}, {200, 5}, {90, 30}, {0, 0}}.fit(100)
	want := Lengths{{50, 20}, {99, 1}, {90, 10}, {1, 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fit (-want +got):\n%s", diff)
	}
}

func TestDefaultLengths(t *testing.T) {
	l := DefaultLengths()
	p, o, ok := l.Mean()
	// Log-normal means: 1024 e^(1/2) = 1688 and 128 e^(0.32) = 176, within the quantile
	// grid's error.
	if !ok || math.Abs(p-1688) > 40 || math.Abs(o-176) > 5 {
		t.Errorf("default mean lengths = %v, %v, want about 1688 and 176", p, o)
	}
	if d := DefaultLengths(); cmp.Diff(l, d) != "" {
		t.Error("DefaultLengths differs between calls, want the same table")
	}
}

func TestReadLengthsOfTheSharedTraces(t *testing.T) {
	// The shared Azure conversation trace beside the repository (as backtest's tests read
	// it): 19366 requests, means of 1155 prompt and 211 output tokens.
	l, err := ReadLengthsFile("../../../shared/traces/azure-llm-2023/conv_requests.csv")
	if err != nil {
		t.Fatalf("the shared traces must be at <repo>/../shared/traces: %v", err)
	}
	p, o, _ := l.Mean()
	if len(l) != 19366 || math.Abs(p-1154.7) > 0.1 || math.Abs(o-211.1) > 0.1 {
		t.Errorf("conv trace: %d requests, means %v and %v; want 19366, 1154.7 and 211.1", len(l), p, o)
	}
}
