package awsfake

import (
	"os"
	"strings"
)

// IsolateEnvironment removes the machine's AWS settings from this process
// (every AWS_* variable, the shared config and credentials files, the
// instance metadata service), so tests that run the real SDK see only what
// they set themselves. Call it from TestMain, before the tests run.
func IsolateEnvironment() {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			os.Unsetenv(k)
		}
	}
	os.Setenv("AWS_CONFIG_FILE", os.DevNull)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}
