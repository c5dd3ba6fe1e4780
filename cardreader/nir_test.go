package cardreader

import (
	"strings"
	"testing"
)

// The expected keys are written as the rule states it (97 − NIR mod 97,
// Corsica read as 19/18 minus 1,000,000/2,000,000), computed by the
// compiler, not by NIRKey's code; the first three are DESIGN §7's test NIRs.
func TestNIRKey(t *testing.T) {
	tests := []struct {
		nir13 string
		want  int
		ok    bool
	}{
		{"2070585756270", 97, true}, // single: PATB-QUATRE Laurence, 207058575627097
		{"2751263220749", 74, true}, // family: ADRUN Zoé, 275126322074974
		{"1120463220123", 23, true}, // family: ADRUN Léo, 112046322012323
		{"1850399123456", int(97 - 1850399123456%97), true},
		{"185032A123456", int(97 - (1850319123456-1000000)%97), true},
		{"185032B123456", int(97 - (1850318123456-2000000)%97), true},
		{"0000000000000", 97, true},
		{"9999999999999", int(97 - 9999999999999%97), true},
		{"12345", 0, false},
		{"20705857562709", 0, false},
		{"18503X9123456", 0, false},
		{"185032a123456", 0, false}, // the rule names capital A and B only
		{"2A70585756270", 0, false}, // 2A counts only as a department
		{"207058575627 ", 0, false},
		{"-207058575627", 0, false},
	}
	for _, tt := range tests {
		got, err := NIRKey(tt.nir13)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("NIRKey(%q) = %d, %v; want %d, ok=%v", tt.nir13, got, err, tt.want, tt.ok)
		}
		if err != nil && len(tt.nir13) > 4 && strings.Contains(err.Error(), tt.nir13[:5]) {
			t.Errorf("NIRKey(%q) error %q quotes the NIR", tt.nir13, err)
		}
	}
}

func TestValidNIR(t *testing.T) {
	corsicaA := "185032A123456"
	corsicaB := "185032B123456"
	keyA, errA := NIRKey(corsicaA)
	keyB, errB := NIRKey(corsicaB)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	twoDigits := func(k int) string { return string([]byte{byte('0' + k/10), byte('0' + k%10)}) }
	tests := []struct {
		nir  string
		want bool
	}{
		{"207058575627097", true},
		{"275126322074974", true},
		{"112046322012323", true},
		{corsicaA + twoDigits(keyA), true},
		{corsicaB + twoDigits(keyB), true},
		// 2A's key on 2B, or on the same digits with a plain 19: 1,000,000
		// and 2,000,000 are not multiples of 97, so the keys differ.
		{corsicaB + twoDigits(keyA), false},
		{"1850319123456" + twoDigits(keyA), false},
		{"207058575627098", false},
		{"275126322074975", false},
		{"20705857562709", false},
		{"2070585756270970", false},
		{"2070585756270 97", false},
		{"20705857562709 ", false},
		{"2070585756270+7", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := ValidNIR(tt.nir); got != tt.want {
			t.Errorf("ValidNIR(%q) = %v, want %v", tt.nir, got, tt.want)
		}
	}
}
