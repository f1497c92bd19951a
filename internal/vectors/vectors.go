// Package vectors locates and loads the GNS test vectors kept beside the
// repository in ../shared/vectors (read-only data captured from real GNS
// sessions). Tests use it; CI has the folder at the same place.
package vectors

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the vectors folder: the first "shared/vectors" found beside the
// current directory or one of its parents. It fails the test if there is none,
// since CI always has it.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("vectors: %v", err)
	}
	for {
		cand := filepath.Join(dir, "..", "shared", "vectors")
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			return cand
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("vectors: no ../shared/vectors beside the repository or any parent of the working directory")
		}
		dir = parent
	}
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
