package main

import (
	"flag"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"k8s.io/klog/v2"
)

// addLogFlags gives every command klog's flags (-v, --vmodule, --log_dir, ...), hidden from
// the help as kubectl hides them: `prescale options` lists them, and the help says so.
func addLogFlags(root *cobra.Command) {
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	root.PersistentFlags().AddGoFlagSet(klogFlags)
	klogFlags.VisitAll(func(f *flag.Flag) {
		root.PersistentFlags().Lookup(f.Name).Hidden = true
	})
	root.SetUsageTemplate(root.UsageTemplate() + "\nUse \"prescale options\" for the logging flags, which every command accepts.\n")
}

// newOptionsCmd returns "prescale options": the flags every command accepts that the help
// does not list (klog's), as `kubectl options` lists them.
func newOptionsCmd(*viper.Viper) *cobra.Command {
	return &cobra.Command{
		Use:   "options",
		Short: "List the logging flags, which every command accepts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			shown := pflag.NewFlagSet("options", pflag.ContinueOnError)
			cmd.Root().PersistentFlags().VisitAll(func(f *pflag.Flag) {
				if f.Hidden {
					c := *f
					c.Hidden = false
					shown.AddFlag(&c)
				}
			})
			fmt.Fprintf(cmd.OutOrStdout(), "The following options can be passed to any command:\n\n%s", shown.FlagUsages())
			return nil
		},
	}
}
