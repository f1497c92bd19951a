package vectors

import "testing"

func TestLoad(t *testing.T) {
	var m map[string]any
	Load(t, "identities.json", &m)
	if len(m) == 0 {
		t.Fatal("identities.json decoded to nothing")
	}
}
