package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// writeAgentConfig writes the agent's configuration for the deployment:
// lifecycle aws through the function URL, the deployment's certificates,
// and the IAM identity every stream proves (the exit requires one).
func writeAgentConfig(o Options, res *Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by 'fluidity aws deploy --stack %s'; run 'fluidity agent --config %s'.\n", o.Name, res.AgentConfig)
	fmt.Fprintf(&b, "lifecycle: aws\ncontrol_url: %s\ncerts: %s\n", strconv.Quote(res.FunctionURL), strconv.Quote(o.certsDir()))
	fmt.Fprintf(&b, "iam:\n  enabled: true\n  region: %s\n", res.Region)
	if o.Profile != "" {
		fmt.Fprintf(&b, "  profile: %s\n", strconv.Quote(o.Profile))
	}
	if err := os.MkdirAll(filepath.Dir(res.AgentConfig), 0o700); err != nil {
		return err
	}
	return os.WriteFile(res.AgentConfig, []byte(b.String()), 0o600)
}
