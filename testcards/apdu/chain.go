package apdu

// Outgoing holds a response too long for one short APDU and hands it out in
// pieces through GET RESPONSE (61xx), the way PIV cards answer OpenSC, which
// never uses extended length.
type Outgoing struct {
	pending []byte
}

// Start answers with the first part of data and keeps the rest for GET
// RESPONSE. ne is the Le of the command (0 when absent: up to 256 bytes).
func (o *Outgoing) Start(data []byte, ne int) []byte {
	o.pending = append(o.pending[:0], data...)
	return o.Next(ne)
}

// Next answers a GET RESPONSE: up to ne bytes (256 when ne is 0; more only
// for extended-length commands), then 61xx while more remains, or 9000 at the
// end.
func (o *Outgoing) Next(ne int) []byte {
	if ne <= 0 {
		ne = 256
	}
	n := min(ne, len(o.pending))
	part := o.pending[:n]
	o.pending = o.pending[n:]
	if len(o.pending) == 0 {
		r := Response(part, OK)
		o.pending = nil
		return r
	}
	return Response(part, BytesAvailable(len(o.pending)))
}

// Pending reports whether a GET RESPONSE is expected.
func (o *Outgoing) Pending() bool { return len(o.pending) > 0 }

// Reset forgets any pending response; any command other than GET RESPONSE
// does this on a real card.
func (o *Outgoing) Reset() { o.pending = nil }

// Incoming assembles a command sent with command chaining (CLA bit 0x10).
type Incoming struct {
	head    []byte // CLA (without chaining bit), INS, P1, P2 of the chain
	data    []byte
	pending bool
}

// MaxChained bounds an assembled command so a hostile host cannot make the
// emulator grow without limit.
const MaxChained = 16 * 1024

// Add takes one command of a chain. It returns the complete command and true
// when c ends the chain, or (zero, false, OK) while more is expected. A chain
// that changes INS/P1/P2 midway or grows past MaxChained yields an error
// status word and is dropped.
func (in *Incoming) Add(c Command) (Command, bool, SW) {
	if in.pending && (in.head[1] != c.INS || in.head[2] != c.P1 || in.head[3] != c.P2) {
		in.Reset()
		return Command{}, false, LastCommandExpected
	}
	if len(in.data)+len(c.Data) > MaxChained {
		in.Reset()
		return Command{}, false, WrongLength
	}
	in.data = append(in.data, c.Data...)
	if c.Chained() {
		in.pending = true
		in.head = []byte{c.CLA &^ 0x10, c.INS, c.P1, c.P2}
		return Command{}, false, OK
	}
	full := c
	full.Data = in.data
	in.data, in.pending, in.head = nil, false, nil
	return full, true, OK
}

// Pending reports whether a chain is in progress.
func (in *Incoming) Pending() bool { return in.pending }

// Reset drops a chain in progress.
func (in *Incoming) Reset() { in.data, in.pending, in.head = nil, false, nil }
