package ecse2e

import (
	"encoding/json"
	"strings"
	"testing"

	"fluidity/internal/doctor"
)

// TestDoctorWithAnExitOnDemand runs 'fluidity doctor' with lifecycle aws:
// it asks the control plane where the exit is and never wakes it, mints
// an IAM token, and checks the woken exit end to end; an identity the
// control plane does not let in fails at that step with its fix.
func TestDoctorWithAnExitOnDemand(t *testing.T) {
	t.Parallel()
	d := deploy(t, deployOptions{exitFlags: []string{"--exit-when-unused", "20s"}})
	const malloryKey = "AKIDMALLORY00001"
	d.cloud.AddIdentity(malloryKey, "mallory-secret", "arn:aws:iam::999988887777:user/mallory")
	doctorRun := func(key string, extra ...string) (doctor.Report, string, error) {
		t.Helper()
		args := append([]string{"doctor", "--json", "--lifecycle", "aws", "--certs", d.certs, "--doctor-target", d.origin,
			"--upstream-proxy", "none"}, extra...)
		out, err := d.fluidity(t, key, args...)
		// The JSON report, then (on failure) the command's error line.
		var rep doctor.Report
		if jerr := json.NewDecoder(strings.NewReader(out)).Decode(&rep); jerr != nil {
			t.Fatalf("doctor's JSON: %v\n%s", jerr, out)
		}
		return rep, out, err
	}
	verdicts := func(rep doctor.Report) map[string]string {
		m := map[string]string{}
		for _, s := range rep.Steps {
			m[s.Name] = s.Verdict
		}
		return m
	}

	// Asleep: the control plane answers, nothing is woken, the network
	// steps wait for a wake.
	rep, out, err := doctorRun(aliceKey)
	v := verdicts(rep)
	if err != nil || !rep.OK || v[doctor.StepControl] != doctor.Warn || v[doctor.StepDirect] != doctor.Skip {
		t.Fatalf("doctor with the exit asleep: %v\n%s", err, out)
	}
	if n := len(d.cloud.Tasks()); n != 0 {
		t.Fatalf("doctor started %d tasks; it must never wake the exit", n)
	}

	// Woken: every step from the control plane to the request passes,
	// with an IAM token.
	if out, err := d.fluidity(t, aliceKey, "wake"); err != nil {
		t.Fatalf("fluidity wake: %v\n%s", err, out)
	}
	rep, out, err = doctorRun(aliceKey, "--iam")
	v = verdicts(rep)
	for _, step := range []string{doctor.StepConfig, doctor.StepControl, doctor.StepDirect, doctor.StepInterception,
		doctor.StepMTLS, doctor.StepIAM, doctor.StepRequest, doctor.StepRTT} {
		if v[step] != doctor.OK {
			t.Errorf("step %q: %s; want OK", step, v[step])
		}
	}
	if err != nil || !rep.OK || !strings.Contains(out, "127.0.0.2:"+d.port) {
		t.Fatalf("doctor with the exit awake: %v\n%s", err, out)
	}

	// An identity the control plane refuses: that step fails, with a fix,
	// and doctor's exit status says so.
	rep, out, err = doctorRun(malloryKey)
	if err == nil || rep.OK {
		t.Fatalf("doctor as an identity not allowed succeeded:\n%s", out)
	}
	for _, s := range rep.Steps {
		if s.Name == doctor.StepControl && (s.Verdict != doctor.Fail || !strings.Contains(s.Fix, "--allow") || !strings.Contains(s.Detail, "mallory")) {
			t.Errorf("control plane step for mallory: %+v; want a failure naming the identity, the fix to let it in", s)
		}
	}
}
