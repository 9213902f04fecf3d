package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// newValidateCmd returns "prescale validate -f FILE": parse a policy file strictly and report
// every problem in it, one per line on stderr, exiting 1; or summarise it on stdout.
func newValidateCmd(v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "validate -f FILE",
		Short: "Check a policy file and report every problem in it",
		Long: `Validate parses a policy file as prescale run would, strictly: unknown keys, values of the
wrong type and out-of-range settings are all reported at once, one per line, each with its
YAML path, value and line. It exits 1 when the file has problems, 2 when it cannot be read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runValidate(cmd, v.GetString("file"))
		},
	}
	cmd.Flags().StringP("file", "f", "", `policy file to check; "-" reads standard input`)
	return cmd
}

func runValidate(cmd *cobra.Command, file string) error {
	if file == "" {
		return errors.New(`no policy file: give -f FILE, or -f - for standard input`)
	}
	var content []byte
	var err error
	if file == "-" {
		content, err = readPolicyFile(cmd.InOrStdin())
	} else {
		content, err = readPolicyPath(file)
	}
	if err != nil {
		return fmt.Errorf("read policy file: %w", err)
	}
	_, policies, err := parseConfig(content, nil)
	if err != nil {
		problems := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			problems = j.Unwrap()
		}
		for _, p := range problems {
			fmt.Fprintln(cmd.ErrOrStderr(), p)
		}
		return exitError{code: 1}
	}
	names := make([]string, len(policies))
	for i, p := range policies {
		names[i] = p.Name
	}
	noun := "policies"
	if len(names) == 1 {
		noun = "policy"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "policy file ok: %d %s (%s)\n", len(names), noun, strings.Join(names, ", "))
	return nil
}
