package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/replay"
	"github.com/prescale/prescale/scaler"
)

// newReplayCmd returns "prescale replay": recorded observations in, one decision per line out.
func newReplayCmd(v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay -f POLICY.yaml [--policy NAME] [OBSERVATIONS.jsonl]",
		Short: "Show what prescale (and the HPA) would have decided for recorded observations",
		Long: `Replay feeds recorded observations (JSON lines: time, specReplicas, pods, metrics) through
the decision engine and prints one JSON decision per line. The history (stabilization
windows, rate policies) carries over from line to line, and a scale counts as written
whenever the desired replicas differ from the line's specReplicas. A policy with a forecast
learns from each line's "load" (the sample of forecast.load.query), and one with an objective
counts each line's "latency" (the sample of objective.query), as prescale run would. Without a file, or with
"-", observations are read from standard input. A malformed line, or one over 16 MiB, stops
the run with its line number and exit code 1.`,
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
			opts := replay.Options{Interval: v.GetDuration("interval"), Startup: v.GetDuration("startup"), Warn: func(msg string) {
				fmt.Fprintf(cmd.ErrOrStderr(), "prescale replay: warning: %s\n", msg)
			}}
			if opts.Interval <= 0 || opts.Startup < 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "prescale replay: --interval must be > 0 and --startup >= 0, got %s and %s\n", opts.Interval, opts.Startup)
				return exitError{code: 1}
			}
			if err := replay.Run(p, opts, r, cmd.OutOrStdout()); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "prescale replay: %v\n", err)
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringP("file", "f", "", "policy file")
	cmd.Flags().String("policy", "", "policy to replay (default: the only one in the file)")
	cmd.Flags().Duration("interval", scaler.DefaultOptions().Interval, "the recorded controller's sync interval: the forecast's step and horizon: auto")
	cmd.Flags().Duration("startup", engine.DefaultStartup, "the pods' start-up time that the forecast's horizon: auto assumes")
	return cmd
}
