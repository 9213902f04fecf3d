// Command prescale is a standalone autoscaler for GPU inference services: it applies the
// HPA's (autoscaling/v2) replica math to Prometheus queries, driven by a policy file.
//
// This package is wiring only: flags, configuration (viper stays here), building clients and
// signals. Each subcommand lives in its own file with its own newXxxCmd constructor, listed
// once in subcommands below.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// subcommands are the constructors of prescale's subcommands, in help order. Each receives
// the viper instance that holds the flags of the command being run and PRESCALE_* environment
// overrides.
var subcommands = []func(v *viper.Viper) *cobra.Command{
	newValidateCmd,
	newImportCmd,
	newReplayCmd,
	newRunCmd,
	newStatusCmd,
	newBacktestCmd,
	newOptionsCmd,
}

func main() {
	os.Exit(execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// exitError ends a command with an exit code; whatever explains it is already printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// execute runs prescale with args and returns its exit code: 0 on success, the code of an
// exitError, or 2 for any other error (bad usage, unreadable file), which it prints.
func execute(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd(viper.New())
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintf(stderr, "prescale: %v\n", err)
		return 2
	}
}

// newRootCmd returns the prescale command with every subcommand registered. v is set up here
// and nowhere else: it reads PRESCALE_* environment variables (PRESCALE_FILE for --file) and
// the flags of the command being run.
func newRootCmd(v *viper.Viper) *cobra.Command {
	v.SetEnvPrefix("PRESCALE")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	root := &cobra.Command{
		Use:   "prescale",
		Short: "Autoscale GPU inference services with the HPA's math on Prometheus queries",
		// Bind only the running command's flags: two subcommands may share a flag name.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return v.BindPFlags(cmd.Flags())
		},
		SilenceUsage:  true,
		SilenceErrors: true, // execute prints errors, once
	}
	addLogFlags(root)
	for _, newCmd := range subcommands {
		root.AddCommand(newCmd(v))
	}
	return root
}
