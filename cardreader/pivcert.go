package cardreader

import (
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
)

// PIV data object tags (NIST SP 800-73-4 Part 1, Table 3 and the
// certificate containers of Appendix A).
const (
	pivTagAuthCert     = 0x5FC105 // X.509 Certificate for PIV Authentication, key 9A
	pivTagDataObject   = 0x53     // what GET DATA returns: the object's contents
	pivTagCertificate  = 0x70
	pivTagCertInfo     = 0x71
	pivTagErrorDetect  = 0xFE // the "LRC", always empty in practice
	pivCertInfoGzipped = 0x01 // CertInfo bit 0: CompressionType = gzip
)

// maxPIVCertificate bounds a decompressed certificate. A CPS or YubiKey
// certificate is 1–3 KB; without a bound, a hostile card could send a few
// hundred bytes of gzip that inflate to gigabytes.
const maxPIVCertificate = 16 << 10

// ErrMalformedPIVObject is wrapped by every error about the contents of a
// PIV certificate object (as opposed to the certificate inside it).
var ErrMalformedPIVObject = errors.New("cardreader: malformed PIV certificate object")

// ErrPIVCertificateTooLarge is a compressed certificate that inflates past
// maxPIVCertificate bytes; it wraps ErrMalformedPIVObject.
var ErrPIVCertificateTooLarge = fmt.Errorf("%w: certificate inflates past %d bytes", ErrMalformedPIVObject, maxPIVCertificate)

// PIVAuthCertificateCommand returns a new copy of the GET DATA command that
// reads the PIV Authentication certificate (object 5FC105, slot 9A), the
// one that carries the CPS identity on the emulated test CPS:
// 00 CB 3F FF 05 5C 03 5F C1 05 00. Send it after SELECT of the PIV
// application; the answer usually comes in parts (61xx, then GET RESPONSE),
// and the data of the completed answer is what ParsePIVCertificateObject
// reads.
func PIVAuthCertificateCommand() []byte { return pivGetDataCommand(pivTagAuthCert) }

// pivGetDataCommand builds GET DATA for a three-byte PIV object tag, with
// Le = 00 (up to 256 bytes now, the rest through GET RESPONSE).
func pivGetDataCommand(tag uint32) []byte {
	return []byte{0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, byte(tag >> 16), byte(tag >> 8), byte(tag), 0x00}
}

// ParsePIVCertificateObject parses the data of a GET DATA answer for a PIV
// certificate object, 53 { 70 <certificate> 71 <CertInfo> FE <LRC> }
// (SP 800-73-4), and returns the certificate. When CertInfo says gzip (as
// YubiKeys may store a large certificate), it inflates at most
// maxPIVCertificate bytes and fails with ErrPIVCertificateTooLarge beyond.
// It returns the parsed certificate rather than DER because every caller
// goes on with IdentityFromCertificate; the DER is the certificate's Raw.
func ParsePIVCertificateObject(b []byte) (*x509.Certificate, error) {
	der, _, err := pivCertificateDER(b)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("cardreader: PIV certificate: %w", err)
	}
	return cert, nil
}

// pivCertificateDER returns the certificate DER of a PIV certificate object
// and whether it was compressed. It uses ParseTLV (tlv.go): tags of up to
// three bytes and lengths of up to three bytes cover these objects.
func pivCertificateDER(b []byte) (der []byte, compressed bool, err error) {
	outer, rest, err := ParseTLV(b)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrMalformedPIVObject, err)
	}
	if outer.Tag != pivTagDataObject {
		return nil, false, fmt.Errorf("%w: tag %X, want 53", ErrMalformedPIVObject, outer.Tag)
	}
	if len(rest) != 0 {
		return nil, false, fmt.Errorf("%w: %d bytes after the object", ErrMalformedPIVObject, len(rest))
	}
	inner, err := ParseTLVs(outer.Value)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrMalformedPIVObject, err)
	}
	var cert, info []byte
	var haveCert, haveInfo bool
	for _, t := range inner {
		switch t.Tag {
		case pivTagCertificate:
			if haveCert {
				return nil, false, fmt.Errorf("%w: two certificates", ErrMalformedPIVObject)
			}
			cert, haveCert = t.Value, true
		case pivTagCertInfo:
			if haveInfo {
				return nil, false, fmt.Errorf("%w: two CertInfo", ErrMalformedPIVObject)
			}
			info, haveInfo = t.Value, true
		}
		// Other tags (FE, the MSCUID 72 of older cards) say nothing we use.
	}
	if !haveCert || len(cert) == 0 {
		return nil, false, fmt.Errorf("%w: no certificate", ErrMalformedPIVObject)
	}
	// A missing or empty CertInfo is read as "not compressed": some cards
	// leave it out, and their certificate is then plain DER.
	if len(info) == 0 || info[0]&pivCertInfoGzipped == 0 {
		return cert, false, nil
	}
	der, err = gunzipBounded(cert, maxPIVCertificate)
	if err != nil {
		return nil, true, err
	}
	return der, true, nil
}

// gunzipBounded inflates b, failing rather than producing more than limit
// bytes.
func gunzipBounded(b []byte, limit int) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %w", ErrMalformedPIVObject, err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %w", ErrMalformedPIVObject, err)
	}
	if len(out) > limit {
		return nil, ErrPIVCertificateTooLarge
	}
	return out, nil
}
