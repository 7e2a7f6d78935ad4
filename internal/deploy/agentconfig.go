package deploy

import (
	"encoding/json"
	"errors"
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

// Record is what a deployment's directory says of it (deployment.json):
// facts for the commands that come after deploy, none of them secret.
type Record struct {
	Name           string   `json:"name"`
	Region         string   `json:"region"`
	FunctionURL    string   `json:"function_url"`
	AgentPolicyArn string   `json:"agent_policy_arn"`
	Allow          []string `json:"allow"`
	Image          string   `json:"image"`
}

// RecordFile is the name of a deployment's record in its directory.
const RecordFile = "deployment.json"

func writeRecord(dir string, r Record) error {
	data, _ := json.MarshalIndent(r, "", "  ")
	return os.WriteFile(filepath.Join(dir, RecordFile), append(data, '\n'), 0o600)
}

// ReadRecord reads the record of the deployment whose directory is dir, or
// whose certificates are in dir (a deployment's certs directory).
func ReadRecord(dir string) (*Record, error) {
	for _, d := range []string{dir, filepath.Dir(dir)} {
		data, err := os.ReadFile(filepath.Join(d, RecordFile))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var r Record
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(d, RecordFile), err)
		}
		return &r, nil
	}
	return nil, os.ErrNotExist
}
