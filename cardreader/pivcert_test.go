package cardreader

import (
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"errors"
	"testing"
)

// pivTLV encodes one BER-TLV object with a one-byte tag and the shortest
// length form, as the emulator and YubiKeys write them.
func pivTLV(tag byte, v []byte) []byte {
	out := []byte{tag}
	switch n := len(v); {
	case n < 0x80:
		out = append(out, byte(n))
	case n <= 0xFF:
		out = append(out, 0x81, byte(n))
	default:
		out = append(out, 0x82, byte(n>>8), byte(n))
	}
	return append(out, v...)
}

// pivLongForm encodes with a three-byte length field whatever the length,
// which BER allows and some cards do.
func pivLongForm(tag byte, v []byte) []byte {
	return append([]byte{tag, 0x83, byte(len(v) >> 16), byte(len(v) >> 8), byte(len(v))}, v...)
}

func pivObject(parts ...[]byte) []byte { return pivTLV(0x53, bytes.Join(parts, nil)) }

func pivGzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pivTestCert(t testing.TB) *x509.Certificate {
	return issueCPSCert(t, cpsCertOpts{subject: cpsSubjectDER(t, "899900063480", "LIBRE", "Max", "Médecin")})
}

func TestParsePIVCertificateObject(t *testing.T) {
	cert := pivTestCert(t)
	der := cert.Raw
	gz := pivGzip(t, der)
	tests := []struct {
		name       string
		obj        []byte
		compressed bool
	}{
		{"as the emulator writes it", pivObject(pivTLV(0x70, der), pivTLV(0x71, []byte{0x00}), pivTLV(0xFE, nil)), false},
		{"without CertInfo", pivObject(pivTLV(0x70, der), pivTLV(0xFE, nil)), false},
		{"empty CertInfo", pivObject(pivTLV(0x70, der), pivTLV(0x71, nil)), false},
		{"without LRC", pivObject(pivTLV(0x70, der), pivTLV(0x71, []byte{0x00})), false},
		{"CertInfo after LRC, MSCUID present", pivObject(pivTLV(0x70, der), pivTLV(0x72, []byte{1, 2}), pivTLV(0xFE, nil), pivTLV(0x71, []byte{0x00})), false},
		{"CertInfo bits other than compression", pivObject(pivTLV(0x70, der), pivTLV(0x71, []byte{0x04})), false},
		{"gzip, as YubiKeys may store it", pivObject(pivTLV(0x70, gz), pivTLV(0x71, []byte{0x01}), pivTLV(0xFE, nil)), true},
		{"gzip with other CertInfo bits", pivObject(pivTLV(0x70, gz), pivTLV(0x71, []byte{0x05})), true},
		{"non-minimal lengths", pivLongForm(0x53, bytes.Join([][]byte{pivLongForm(0x70, der), {0x71, 0x81, 0x01, 0x00}}, nil)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, compressed, err := pivCertificateDER(tt.obj)
			if err != nil {
				t.Fatalf("pivCertificateDER: %v", err)
			}
			if !bytes.Equal(got, der) || compressed != tt.compressed {
				t.Errorf("got %d bytes compressed=%v, want the certificate's %d, compressed=%v", len(got), compressed, len(der), tt.compressed)
			}
			c, err := ParsePIVCertificateObject(tt.obj)
			if err != nil {
				t.Fatalf("ParsePIVCertificateObject: %v", err)
			}
			if !c.Equal(cert) {
				t.Error("ParsePIVCertificateObject returned another certificate")
			}
		})
	}
}

func TestParsePIVCertificateObjectErrors(t *testing.T) {
	der := pivTestCert(t).Raw
	good := pivObject(pivTLV(0x70, der), pivTLV(0x71, []byte{0x00}), pivTLV(0xFE, nil))
	bomb := pivGzip(t, make([]byte, maxPIVCertificate+1))
	tests := []struct {
		name string
		obj  []byte
		want error // ErrMalformedPIVObject unless said otherwise
	}{
		{"empty", nil, nil},
		{"wrong outer tag", pivTLV(0x54, pivTLV(0x70, der)), nil},
		{"bare certificate", der, nil},
		{"data after the object", append(bytes.Clone(good), 0x90, 0x00), nil},
		{"truncated", good[:len(good)-10], nil},
		{"inner TLV truncated", pivObject([]byte{0x70, 0x82, 0x10}), nil},
		{"no certificate", pivObject(pivTLV(0x71, []byte{0x00}), pivTLV(0xFE, nil)), nil},
		{"empty certificate", pivObject(pivTLV(0x70, nil), pivTLV(0x71, []byte{0x00})), nil},
		{"two certificates", pivObject(pivTLV(0x70, der), pivTLV(0x70, der)), nil},
		{"two CertInfo", pivObject(pivTLV(0x70, der), pivTLV(0x71, []byte{0x00}), pivTLV(0x71, []byte{0x01})), nil},
		{"compressed flag on plain DER", pivObject(pivTLV(0x70, der), pivTLV(0x71, []byte{0x01})), nil},
		{"truncated gzip", pivObject(pivTLV(0x70, pivGzip(t, der)[:100]), pivTLV(0x71, []byte{0x01})), nil},
		{"gzip bomb", pivObject(pivTLV(0x70, bomb), pivTLV(0x71, []byte{0x01})), ErrPIVCertificateTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == nil {
				want = ErrMalformedPIVObject
			}
			c, err := ParsePIVCertificateObject(tt.obj)
			if !errors.Is(err, want) || c != nil {
				t.Errorf("got %v, %v; want %v", c, err, want)
			}
		})
	}

	// A well-formed object around something that is not a certificate
	// fails in x509, not as a malformed object.
	c, err := ParsePIVCertificateObject(pivObject(pivTLV(0x70, []byte{0x30, 0x03, 0x02, 0x01, 0x01})))
	if err == nil || c != nil || errors.Is(err, ErrMalformedPIVObject) {
		t.Errorf("non-certificate: %v, %v", c, err)
	}
	if !errors.Is(ErrPIVCertificateTooLarge, ErrMalformedPIVObject) {
		t.Error("ErrPIVCertificateTooLarge does not wrap ErrMalformedPIVObject")
	}
}

func TestGunzipBoundedLimit(t *testing.T) {
	for _, n := range []int{0, 1, maxPIVCertificate - 1, maxPIVCertificate} {
		out, err := gunzipBounded(pivGzip(t, bytes.Repeat([]byte{'x'}, n)), maxPIVCertificate)
		if err != nil || len(out) != n {
			t.Errorf("%d bytes: got %d, %v", n, len(out), err)
		}
	}
	if _, err := gunzipBounded(pivGzip(t, make([]byte, maxPIVCertificate+1)), maxPIVCertificate); !errors.Is(err, ErrPIVCertificateTooLarge) {
		t.Errorf("limit+1: %v", err)
	}
	// Concatenated gzip members count together, so splitting a bomb into
	// members does not get around the limit.
	half := pivGzip(t, make([]byte, maxPIVCertificate/2+1))
	if _, err := gunzipBounded(append(bytes.Clone(half), half...), maxPIVCertificate); !errors.Is(err, ErrPIVCertificateTooLarge) {
		t.Errorf("two members: %v", err)
	}
}

func TestPIVAuthCertificateCommand(t *testing.T) {
	want := []byte{0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00}
	got := PIVAuthCertificateCommand()
	if !bytes.Equal(got, want) {
		t.Fatalf("got % X, want % X", got, want)
	}
	got[8] = 0xFF
	if !bytes.Equal(PIVAuthCertificateCommand(), want) {
		t.Error("modifying a returned command changed the next one")
	}
}

func FuzzParsePIVCertificateObject(f *testing.F) {
	der := pivTestCert(f).Raw
	f.Add(pivObject(pivTLV(0x70, der), pivTLV(0x71, []byte{0x00}), pivTLV(0xFE, nil)))
	f.Add(pivObject(pivTLV(0x70, pivGzip(f, der)), pivTLV(0x71, []byte{0x01}), pivTLV(0xFE, nil)))
	f.Add(pivObject(pivTLV(0x70, pivGzip(f, make([]byte, maxPIVCertificate+1))), pivTLV(0x71, []byte{0x01})))
	f.Add(pivObject(pivTLV(0x70, []byte{0x30, 0x00})))
	f.Add([]byte{0x53, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, compressed, err := pivCertificateDER(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedPIVObject) {
				t.Fatalf("error %v does not wrap ErrMalformedPIVObject", err)
			}
		} else if len(got) == 0 || (compressed && len(got) > maxPIVCertificate) {
			t.Fatalf("%d bytes, compressed=%v", len(got), compressed)
		}
		c, err := ParsePIVCertificateObject(b)
		if (err == nil) != (c != nil) {
			t.Fatalf("certificate %v with error %v", c, err)
		}
		if c != nil {
			// Whatever came off the card goes on to the identity parser,
			// which must cope too.
			_, _ = IdentityFromCertificate(c)
		}
	})
}
