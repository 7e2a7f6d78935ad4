package cfn

import (
	"bufio"
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

func parseFile(t *testing.T, name string) *Template {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := Parse(name, data)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func TestCheckGood(t *testing.T) {
	for _, p := range Check(parseFile(t, "good.yaml"), VendoredSpec()) {
		t.Errorf("%s [%s]", p, p.Code)
	}
}

// want is a problem a fixture's comment expects on its line.
type want struct {
	line int
	code Code
	part string
}

var wantRE = regexp.MustCompile(`(\w+) "((?:[^"\\]|\\.)*)"`)

// wants reads the "# want Code "part" …" comments of a fixture.
func wants(t *testing.T, name string) []want {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var out []want
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		_, comment, ok := strings.Cut(sc.Text(), "# want ")
		if !ok {
			continue
		}
		for _, m := range wantRE.FindAllStringSubmatch(comment, -1) {
			out = append(out, want{line: line, code: Code(m[1]), part: m[2]})
		}
	}
	return out
}

func TestCheckBad(t *testing.T) {
	tmpl := parseFile(t, "bad.yaml")
	problems := Check(tmpl, VendoredSpec())
	expected := wants(t, "bad.yaml")
	if len(expected) < 20 {
		t.Fatalf("read only %d wants from the fixture", len(expected))
	}
	matched := make([]bool, len(expected))
	for _, p := range problems {
		found := false
		for i, w := range expected {
			if !matched[i] && w.line == p.Line && w.code == p.Code && strings.Contains(p.Message, w.part) {
				matched[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("unexpected problem: %s [%s]", p, p.Code)
		}
		if p.File != "bad.yaml" {
			t.Errorf("problem names file %q, want bad.yaml", p.File)
		}
	}
	for i, w := range expected {
		if !matched[i] {
			t.Errorf("bad.yaml:%d: no %s problem containing %q", w.line, w.code, w.part)
		}
	}
}
