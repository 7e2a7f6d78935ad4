package cfn

import (
	"errors"
	"slices"
	"testing"
)

func mustParse(t *testing.T, src string) *Template {
	t.Helper()
	tmpl, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func TestCreationOrder(t *testing.T) {
	// Declared out of order on purpose: each reference kind must pull
	// its target first, and free resources go in document order.
	tmpl := mustParse(t, `
Parameters:
  P: {Type: String}
Conditions:
  C: !Equals [!Ref P, x]
Resources:
  BySub: {Type: AWS::SSM::Parameter, Properties: {Value: !Sub "${ByGetAtt.Arn}-${AWS::Region}-${P}"}}
  ByGetAtt: {Type: AWS::SSM::Parameter, Properties: {Value: !GetAtt ByRef.Value}}
  ByRef: {Type: AWS::SSM::Parameter, Properties: {Value: !Ref ByDependsOn}}
  ByDependsOn: {Type: AWS::SSM::Parameter, DependsOn: [ByIf]}
  ByIf: {Type: AWS::SSM::Parameter, Properties: {Value: !If [C, !Ref Free2, !Ref Free1]}}
  Free1: {Type: AWS::SSM::Parameter}
  Free2: {Type: AWS::SSM::Parameter}
  BySubVariables: {Type: AWS::SSM::Parameter, Properties: {Value: !Sub ["${X}", {X: !Ref Free3}]}}
  Free3: {Type: AWS::SSM::Parameter}
`)
	got, err := tmpl.CreationOrder()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Free1", "Free2", "ByIf", "ByDependsOn", "ByRef", "ByGetAtt", "BySub", "Free3", "BySubVariables"}
	if !slices.Equal(got, want) {
		t.Errorf("CreationOrder() = %v, want %v", got, want)
	}
	del, err := tmpl.DeletionOrder()
	slices.Reverse(want)
	if err != nil || !slices.Equal(del, want) {
		t.Errorf("DeletionOrder() = %v, %v; want %v", del, err, want)
	}
	if deps := tmpl.Dependencies("BySub"); !slices.Equal(deps, []string{"ByGetAtt"}) {
		t.Errorf("Dependencies(BySub) = %v, want only the resource, not the parameter or pseudo-parameter", deps)
	}
	if deps := tmpl.Dependencies("ByIf"); !slices.Equal(deps, []string{"Free1", "Free2"}) {
		t.Errorf("Dependencies(ByIf) = %v, want both branches", deps)
	}
}

func TestCreationOrderRefusesCircles(t *testing.T) {
	tests := []struct {
		name, src string
		cycle     []string
	}{
		{"through Ref and GetAtt", `
Resources:
  Free: {Type: AWS::SSM::Parameter}
  A: {Type: AWS::SSM::Parameter, Properties: {Value: !Ref B}}
  B: {Type: AWS::SSM::Parameter, Properties: {Value: !GetAtt C.Value}}
  C: {Type: AWS::SSM::Parameter, Properties: {Value: !Sub "${A}"}}
`, []string{"A", "B", "C", "A"}},
		{"through DependsOn on itself", `
Resources:
  A: {Type: AWS::SSM::Parameter, DependsOn: A}
`, []string{"A", "A"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := mustParse(t, tt.src)
			_, err := tmpl.CreationOrder()
			var ce *CycleError
			if !errors.As(err, &ce) {
				t.Fatalf("CreationOrder: %v, want a *CycleError", err)
			}
			if !slices.Equal(ce.Cycle, tt.cycle) {
				t.Errorf("cycle %v, want %v", ce.Cycle, tt.cycle)
			}
			if _, err := Evaluate(tmpl, Env{}); !errors.As(err, &ce) {
				t.Errorf("Evaluate: %v, want a *CycleError", err)
			}
			problems := Check(tmpl, nil)
			if len(problems) != 1 || problems[0].Code != CodeCycle || problems[0].Line != tmpl.Resources["A"].Line {
				t.Errorf("Check: %v, want one circle at A's line", problems)
			}
		})
	}
}
