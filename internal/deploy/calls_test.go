package deploy

import (
	"go/ast"
	"go/types"
	"maps"
	"slices"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"
)

const sdkServicePrefix = "github.com/aws/aws-sdk-go-v2/service/"

// sdkCalls returns the AWS API calls ("ecs:RunTask") the packages make: every
// call of a method whose request parameter is a service's <Op>Input (on
// the SDK's client or on an interface of our own that mirrors it), and
// every New<Op>Paginator.
func sdkCalls(t *testing.T, patterns ...string) map[string]bool {
	t.Helper()
	cfg := &packages.Config{Mode: packages.NeedName | packages.NeedTypes | packages.NeedSyntax | packages.NeedTypesInfo, Dir: "../.."}
	pkgs, err := packages.Load(cfg, patterns...)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]bool{}
	for _, p := range pkgs {
		for _, e := range p.Errors {
			t.Fatalf("loading %s: %v", p.PkgPath, e)
		}
		for _, f := range p.Syntax {
			if strings.HasSuffix(p.Fset.Position(f.Pos()).Filename, "_test.go") {
				continue
			}
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				if op := sdkOp(p.TypesInfo, call); op != "" {
					calls[op] = true
				}
				return true
			})
		}
	}
	return calls
}

// sdkOp is the AWS API call a call expression makes, or "".
func sdkOp(info *types.Info, call *ast.CallExpr) string {
	var obj types.Object
	switch fun := call.Fun.(type) {
	case *ast.SelectorExpr:
		obj = info.Uses[fun.Sel]
	case *ast.Ident:
		obj = info.Uses[fun]
	}
	fn, ok := obj.(*types.Func)
	if !ok {
		return ""
	}
	sig := fn.Type().(*types.Signature)
	if pkg := fn.Pkg(); pkg != nil && strings.HasPrefix(pkg.Path(), sdkServicePrefix) && sig.Recv() == nil {
		if op, ok := strings.CutPrefix(fn.Name(), "New"); ok {
			if op, ok = strings.CutSuffix(op, "Paginator"); ok {
				return service(pkg.Path()) + ":" + op
			}
		}
		return ""
	}
	if sig.Recv() == nil || sig.Params().Len() < 2 {
		return ""
	}
	ptr, ok := sig.Params().At(1).Type().(*types.Pointer)
	if !ok {
		return ""
	}
	named, ok := ptr.Elem().(*types.Named)
	if !ok || named.Obj().Pkg() == nil || !strings.HasPrefix(named.Obj().Pkg().Path(), sdkServicePrefix) {
		return ""
	}
	op, ok := strings.CutSuffix(named.Obj().Name(), "Input")
	if !ok || op != fn.Name() {
		return ""
	}
	return service(named.Obj().Pkg().Path()) + ":" + op
}

func service(path string) string {
	s := strings.TrimPrefix(path, sdkServicePrefix)
	s, _, _ = strings.Cut(s, "/")
	return s
}

func sorted(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }

func TestTheCodesAWSCallsAreFound(t *testing.T) {
	exit := sdkCalls(t, "fluidity/internal/ecstask", "fluidity/internal/certstore")
	control := sdkCalls(t, "fluidity/internal/controlplane", "fluidity/internal/lambdafn")
	t.Logf("the exit calls %v", sorted(exit))
	t.Logf("the control plane calls %v", sorted(control))
	for _, want := range []string{"ecs:TagResource", "ssm:GetParameter", "secretsmanager:GetSecretValue"} {
		if !exit[want] {
			t.Errorf("the exit's calls %v lack %s", sorted(exit), want)
		}
	}
	for _, want := range []string{"ecs:RunTask", "ecs:ListTasks", "ecs:DescribeTasks", "ecs:StopTask", "ec2:DescribeNetworkInterfaces", "ssm:PutParameter"} {
		if !control[want] {
			t.Errorf("the control plane's calls %v lack %s", sorted(control), want)
		}
	}
}
