package signaling

// ParseLineForTest exposes the line parser to the fuzz target.
func ParseLineForTest(b []byte) (string, []byte, error) {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	id, blob, err := parseLine(b)
	if err == nil {
		if CheckIdentity(id) != nil || len(blob) > MaxBlobSize {
			panic("parseLine accepted a bad line")
		}
	}
	return id, blob, err
}
