package wire

import "testing"

// benchReliablePayload builds a payload as GNS sends it under load: a
// stop-waiting frame, an ack, and one reliable segment running to the end
// of the payload holding 17 messages of 64 bytes, each with its header.
func benchReliablePayload(tb testing.TB) (payload, stream []byte) {
	msg := data(64)
	for i := 0; i < 17; i++ {
		stream = AppendMsgHeader(stream, 1, len(msg))
		stream = append(stream, msg...)
	}
	var e Encoder
	e.Reset(make([]byte, 0, 1200), 1000)
	e.AppendStopWaiting(990)
	e.AppendAck(900, 40, nil)
	e.AppendReliable(100000, stream, true)
	return e.Bytes(), stream
}

// benchUnreliablePayload builds a payload of 17 whole unreliable messages
// of 64 bytes, the last one running to the end of the payload.
func benchUnreliablePayload() []byte {
	msg := data(64)
	var e Encoder
	e.Reset(make([]byte, 0, 1200), 1000)
	for i := int64(0); i < 17; i++ {
		e.AppendUnreliable(500+i, 0, msg, true, i == 16)
	}
	return e.Bytes()
}

var benchBlocks = []AckBlock{{3, 1}, {20, 2}, {7, 9}, {100, 1}, {1, 1}, {64, 30}, {5, 5}, {200, 3}}

func benchDecoder() *Decoder {
	return &Decoder{PktNum: 1000, NextSendPktNum: 1000, PeerVersion: 13, Resolver: fixedResolver{rel: 100000, unrel: 500}}
}

func BenchmarkDecodeReliable(b *testing.B) {
	payload, _ := benchReliablePayload(b)
	d := benchDecoder()
	var f Frame
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	msgs := 0
	for b.Loop() {
		d.Reset(payload)
		for {
			ok, err := d.Next(&f)
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
			if f.Kind != KindReliable {
				continue
			}
			// Walk the message headers, as the engine does.
			for s := f.Data; len(s) > 0; {
				_, size, n, err := ParseMsgHeader(s)
				if err != nil {
					b.Fatal(err)
				}
				s = s[n+int(size):]
				msgs++
			}
		}
	}
	b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkEncodeReliable(b *testing.B) {
	payload, _ := benchReliablePayload(b)
	msg := data(64)
	var e Encoder
	buf := make([]byte, 0, 1200)
	stream := make([]byte, 0, 1200)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		// Frame the messages into the stream, then the payload.
		stream = stream[:0]
		for i := 0; i < 17; i++ {
			stream = AppendMsgHeader(stream, 1, len(msg))
			stream = append(stream, msg...)
		}
		e.Reset(buf, 1000)
		e.AppendStopWaiting(990)
		e.AppendAck(900, 40, nil)
		e.AppendReliable(100000, stream, true)
	}
	if string(e.Bytes()) != string(payload) {
		b.Fatal("payload differs")
	}
}

func BenchmarkDecodeUnreliable(b *testing.B) {
	payload := benchUnreliablePayload()
	d := benchDecoder()
	var f Frame
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		d.Reset(payload)
		for {
			ok, err := d.Next(&f)
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
		}
	}
}

func BenchmarkEncodeUnreliable(b *testing.B) {
	payload := benchUnreliablePayload()
	msg := data(64)
	var e Encoder
	buf := make([]byte, 0, 1200)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		e.Reset(buf, 1000)
		for i := int64(0); i < 17; i++ {
			e.AppendUnreliable(500+i, 0, msg, true, i == 16)
		}
	}
	if string(e.Bytes()) != string(payload) {
		b.Fatal("payload differs")
	}
}

func BenchmarkDecodeAck(b *testing.B) {
	var e Encoder
	e.Reset(nil, 1000)
	e.AppendAck(990, 12, benchBlocks)
	payload := e.Bytes()
	d := benchDecoder()
	var f Frame
	b.ReportAllocs()
	for b.Loop() {
		d.Reset(payload)
		if ok, err := d.Next(&f); !ok || err != nil || len(f.AckBlocks) != len(benchBlocks) {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkEncodeAck(b *testing.B) {
	var e Encoder
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		e.Reset(buf, 1000)
		e.AppendAck(990, 12, benchBlocks)
	}
}

// TestCodecNoAllocs checks that decoding and encoding do not allocate.
func TestCodecNoAllocs(t *testing.T) {
	payload, stream := benchReliablePayload(t)
	unrel := benchUnreliablePayload()
	d := benchDecoder()
	var f Frame
	decode := func(p []byte) {
		d.Reset(p)
		for {
			if ok, err := d.Next(&f); !ok || err != nil {
				return
			}
		}
	}
	bad := []byte{0x98, 1, 0, 0} // fails: decoding errors must not allocate either
	if n := testing.AllocsPerRun(100, func() { decode(payload); decode(unrel); decode(bad) }); n != 0 {
		t.Errorf("decode: %v allocations", n)
	}
	var e Encoder
	buf := make([]byte, 0, 1500)
	if n := testing.AllocsPerRun(100, func() {
		e.Reset(buf, 1000)
		e.AppendStopWaiting(990)
		e.AppendAck(900, 40, benchBlocks)
		e.SelectLane(9)
		e.AppendUnreliable(7, 0, stream[:10], true, false)
		e.AppendReliable(100000, stream, true)
	}); n != 0 {
		t.Errorf("encode: %v allocations", n)
	}
}
