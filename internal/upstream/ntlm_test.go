package upstream

import (
	"encoding/base64"
	"testing"

	"github.com/Azure/go-ntlmssp"
)

// squidFakeChallenge is what Squid 5's ntlm_fake_auth sent: its TargetName
// field points far outside the message.
const squidFakeChallenge = "TlRMTVNTUAACAAAACQAJAK6qqqoGgggAyVx4Nh8I33gAAAAAAAA6AFdPUktHUk9VUA=="

func TestTolerateChallengeAnswersAHelperWithBadOffsets(t *testing.T) {
	msg, err := base64.StdEncoding.DecodeString(squidFakeChallenge)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ntlmssp.NewAuthenticateMessage(msg, `CORP\bob`, "pw", nil); err == nil {
		t.Fatal("the raw challenge parses: the test no longer shows the problem")
	}
	if _, err := ntlmssp.NewAuthenticateMessage(tolerateChallenge(msg), `CORP\bob`, "pw", nil); err != nil {
		t.Fatalf("after tolerateChallenge: %v", err)
	}
	if got := tolerateChallenge(msg[:20]); string(got) != string(msg[:20]) {
		t.Error("a short message was changed")
	}
}

func FuzzTolerateChallenge(f *testing.F) {
	msg, _ := base64.StdEncoding.DecodeString(squidFakeChallenge)
	f.Add(msg)
	f.Add([]byte("NTLMSSP\x00\x02\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := tolerateChallenge(b)
		if len(out) != len(b) {
			t.Fatalf("length changed: %d → %d", len(b), len(out))
		}
		// The NTLM code must refuse or answer, never panic.
		ntlmssp.NewAuthenticateMessage(out, "u", "p", nil)
	})
}
