package netmsg_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeExamples checks that each Go block of README.md, marked with
// <!-- ExampleName --> before it, is the body of that Example function in
// example_test.go (one tab less, without its // Output: comment), so the
// README's quick start is code that compiles and runs with its output
// checked.
func TestReadmeExamples(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "example_test.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[string]string{}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || !strings.HasPrefix(fd.Name.Name, "Example") {
			continue
		}
		b := string(src[fset.Position(fd.Body.Lbrace).Offset+1 : fset.Position(fd.Body.Rbrace).Offset])
		var lines []string
		for _, l := range strings.Split(strings.Trim(b, "\n"), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "// Output:") {
				break
			}
			lines = append(lines, strings.TrimPrefix(l, "\t"))
		}
		bodies[fd.Name.Name] = strings.TrimRight(strings.Join(lines, "\n"), "\n")
	}

	blocks := regexp.MustCompile("(?s)<!-- (Example\\w*) -->\n```go\n(.*?)\n```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 2 {
		t.Fatalf("README.md has %d marked Go blocks, want the two of the quick start", len(blocks))
	}
	if n := strings.Count(string(readme), "```go"); n != len(blocks) {
		t.Errorf("README.md has %d Go blocks, %d of them marked: every Go block must be an Example's body", n, len(blocks))
	}
	for _, b := range blocks {
		name, code := b[1], b[2]
		want, ok := bodies[name]
		if !ok {
			t.Errorf("README.md block %s: no such Example in example_test.go", name)
			continue
		}
		if code != want {
			t.Errorf("README.md block %s differs from its Example's body:\n--- README\n%s\n--- example_test.go\n%s", name, code, want)
		}
	}
}
