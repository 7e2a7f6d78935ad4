package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"fluidity/internal/config"
)

// WriteReference writes the configuration reference of every configurable
// command as Markdown: each key with its flag, environment variable, type,
// default and meaning. docs/configuration.md is this output.
func WriteReference(w io.Writer) {
	fmt.Fprintf(w, "# Configuration reference\n\n")
	fmt.Fprintf(w, "Every key can be set in a YAML file (`--config FILE` or `FLUIDITY_CONFIG`), by an environment\n")
	fmt.Fprintf(w, "variable, or by a flag; flags win over the environment, which wins over the file. Nested keys are\n")
	fmt.Fprintf(w, "written nested in YAML (`egress:` then `allow_hosts:`). Lists take commas or repeated flags;\n")
	fmt.Fprintf(w, "durations use Go syntax (`10s`, `1m30s`). Unknown keys and invalid values stop the start with a\n")
	fmt.Fprintf(w, "message naming the key.\n\nThis file is generated from the code: `go test ./internal/cli -run Reference -update`.\n")
	sections := []struct {
		name, title string
		cfg         any
	}{
		{"server", "fluidity server", ptr(defaultServerConfig())},
		{"agent", "fluidity agent (also read by fluidity wake and fluidity stop)", ptr(defaultAgentConfig())},
		{"up", "fluidity up", ptr(defaultUpConfig())},
		{"certs init", "fluidity certs init", &certsInitConfig{ClientName: "fluidity-client"}},
		{"certs issue-client", "fluidity certs issue-client", &issueClientConfig{}},
		{"certs revoke", "fluidity certs revoke", &revokeConfig{}},
		{"lambda", "fluidity lambda (the control plane's function, configured by its environment)", ptr(defaultLambdaConfig())},
	}
	for _, s := range sections {
		fs := flag.NewFlagSet(s.name, flag.ContinueOnError)
		l := config.Bind(fs, s.cfg)
		fmt.Fprintf(w, "\n## `%s`\n\n| key | flag | environment | type | default | meaning |\n|---|---|---|---|---|---|\n", s.title)
		for _, k := range l.Keys() {
			flagName := ""
			if k.Flag != "" {
				flagName = "`--" + k.Flag + "`"
			}
			def := k.Default
			if def != "" {
				def = "`" + def + "`"
			}
			fmt.Fprintf(w, "| `%s` | %s | `%s` | %s | %s | %s |\n", k.Path, flagName, k.Env, k.Type, def, strings.ReplaceAll(k.Help, "|", "\\|"))
		}
	}
}

func ptr[T any](v T) *T { return &v }
