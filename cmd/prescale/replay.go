package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/prescale/prescale/replay"
)

// newReplayCmd returns "prescale replay": recorded observations in, one decision per line out.
func newReplayCmd(v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay -f POLICY.yaml [--policy NAME] [OBSERVATIONS.jsonl]",
		Short: "Show what prescale (and the HPA) would have decided for recorded observations",
		Long: `Replay feeds recorded observations (JSON lines: time, specReplicas, pods, metrics) through
the decision engine and prints one JSON decision per line. The history (stabilization
windows, rate policies) carries over from line to line, and a scale counts as written
whenever the desired replicas differ from the line's specReplicas. Without a file, or with
"-", observations are read from standard input. A malformed line stops the run with its
line number and exit code 1.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := loadPolicy(v.GetString("file"), v.GetString("policy"))
			if err != nil {
				return err
			}
			var r io.Reader = cmd.InOrStdin()
			if len(args) == 1 && args[0] != "-" {
				fh, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("open observations: %w", err)
				}
				defer fh.Close()
				r = fh
			}
			if err := replay.Run(p, r, cmd.OutOrStdout()); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "prescale replay: %v\n", err)
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringP("file", "f", "", "policy file")
	cmd.Flags().String("policy", "", "policy to replay (default: the only one in the file)")
	return cmd
}
