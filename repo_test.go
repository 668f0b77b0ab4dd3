package callsign_test

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"os/exec"
	"strings"
	"testing"
)

type goPackage struct {
	ImportPath string
	Dir        string
	Name       string
	Deps       []string
	Imports    []string
	GoFiles    []string
}

func listPackages(t *testing.T, args ...string) []goPackage {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-json"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []goPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// The root package holds only domain types: standard library imports only.
func TestRootImportsOnlyStdlib(t *testing.T) {
	for _, p := range listPackages(t, ".") {
		for _, imp := range p.Imports {
			if strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
				t.Errorf("package callsign imports %s; the root may import only the standard library", imp)
			}
		}
	}
}

// The library parts a customer's API imports must not pull in a database
// driver or database/sql (tailscale's deptest does the same).
func TestLibraryHasNoDatabaseDeps(t *testing.T) {
	bad := []string{"database/sql", "modernc.org/sqlite", "github.com/jackc/pgx", "github.com/mattn/go-sqlite3"}
	for _, p := range listPackages(t, "./auth/...", "./capture", "./client", "./replay", "./internal/strictjson") {
		for _, d := range p.Deps {
			for _, b := range bad {
				if d == b || strings.HasPrefix(d, b+"/") {
					t.Errorf("%s depends on %s", p.ImportPath, d)
				}
			}
		}
	}
}

// Every package has a doc comment (tailscale's pkgdoc_test.go).
func TestEveryPackageHasDoc(t *testing.T) {
	for _, p := range listPackages(t, "./...") {
		found := false
		for _, f := range p.GoFiles {
			af, err := parser.ParseFile(token.NewFileSet(), p.Dir+"/"+f, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if af.Doc != nil && strings.HasPrefix(af.Doc.Text(), "Package "+p.Name) || (p.Name == "main" && af.Doc != nil && strings.HasPrefix(af.Doc.Text(), "Command ")) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
	}
}
