package cardreader

import "fmt"

// NIRKey computes the control key of a 13-character NIR (the French social
// security number without its key): 97 minus the NIR modulo 97, with
// Corsica's departments 2A and 2B read as 19 and 18 and the number then
// lowered by 1,000,000 and 2,000,000, as the rule says. Its errors never
// quote the NIR: it is health data, and errors end up in logs.
func NIRKey(nir13 string) (int, error) {
	if len(nir13) != 13 {
		return 0, fmt.Errorf("cardreader: NIR of %d characters, want 13", len(nir13))
	}
	digits := nir13
	var sub int64
	switch digits[5:7] {
	case "2A":
		digits, sub = digits[:5]+"19"+digits[7:], 1000000
	case "2B":
		digits, sub = digits[:5]+"18"+digits[7:], 2000000
	}
	var n int64
	for i, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("cardreader: NIR has a non-digit at position %d", i+1)
		}
		n = n*10 + int64(c-'0')
	}
	n -= sub
	return int(97 - n%97), nil
}

// ValidNIR reports whether a 15-character NIR carries the right control key.
func ValidNIR(nir string) bool {
	if len(nir) != 15 {
		return false
	}
	k, err := NIRKey(nir[:13])
	if err != nil {
		return false
	}
	return fmt.Sprintf("%02d", k) == nir[13:]
}
