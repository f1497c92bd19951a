// Package vectors locates and loads the GNS test vectors kept in the
// repository under testdata/vectors (read-only data captured from real GNS
// sessions, copied from the project's shared folder so a plain clone tests
// itself).
package vectors

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Dir returns the vectors folder, testdata/vectors at the repository's root.
// It fails the test if the folder is missing.
func Dir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatalf("vectors: cannot locate the package source")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "vectors")
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("vectors: no testdata/vectors at the repository's root (%v)", err)
	}
	return dir
}

// Load decodes the JSON file name (for example "snp_frames.json") of the
// vectors folder into v.
func Load(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir(t), name))
	if err != nil {
		t.Fatalf("vectors: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("vectors: %s: %v", name, err)
	}
}
