package peer

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// Stream transports (QUIC streams, KCP sessions) carry messages as a 4-byte
// little-endian length followed by the payload.
const (
	frameHeaderLen = 4
	// maxFrame bounds a frame so a corrupt length cannot make us allocate
	// without limit; W3's 256 KiB messages are far below it.
	maxFrame = 16 << 20
	// readBufSize is the buffered reader's size over a stream.
	readBufSize = 256 << 10
)

// frameReader reads length-prefixed messages from a stream, reusing one
// buffer: the slice next returns is valid until the following call.
type frameReader struct {
	r   *bufio.Reader
	hdr [frameHeaderLen]byte
	buf []byte
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, readBufSize), buf: make([]byte, 2048)}
}

func (f *frameReader) next() ([]byte, error) {
	if _, err := io.ReadFull(f.r, f.hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(f.hdr[:])
	if n > maxFrame {
		return nil, fmt.Errorf("peer: frame of %d bytes exceeds %d", n, maxFrame)
	}
	if cap(f.buf) < int(n) {
		f.buf = make([]byte, n)
	}
	b := f.buf[:n]
	if _, err := io.ReadFull(f.r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// appendFrame appends b, length-prefixed, to dst.
func appendFrame(dst, b []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}
