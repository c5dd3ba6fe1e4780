package persona

import "testing"

func TestNIRKey(t *testing.T) {
	tests := []struct {
		nir13 string
		want  int
		ok    bool
	}{
		{"2751263220749", 74, true},
		{"2070585756270", 97, true},
		{"1120463220123", 23, true},
		{"1850399123456", int(97 - 1850399123456%97), true},
		// Corsica: 2A reads as 19 minus 1,000,000; 2B as 18 minus 2,000,000.
		{"185032A123456", int(97 - (1850319123456-1000000)%97), true},
		{"185032B123456", int(97 - (1850318123456-2000000)%97), true},
		{"12345", 0, false},
		{"18503X9123456", 0, false},
	}
	for _, tt := range tests {
		got, err := NIRKey(tt.nir13)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("NIRKey(%q) = %d, %v; want %d, ok=%v", tt.nir13, got, err, tt.want, tt.ok)
		}
	}
}

func TestPersonasCarryValidNIRs(t *testing.T) {
	for _, p := range Patients() {
		for _, b := range p.Beneficiaries {
			if !ValidNIR(b.NIR) {
				t.Errorf("%s: %s %s has NIR %s with a wrong key", p.Name, b.GivenName, b.Surname, b.NIR)
			}
		}
	}
	if ValidNIR("275126322074975") {
		t.Error("ValidNIR accepted a wrong key")
	}
}

func TestLookup(t *testing.T) {
	gp, err := LookupProfessional("gp")
	if err != nil || gp.IDNat != "899900063480" || gp.ProfessionLabel != "Médecin" {
		t.Fatalf("gp = %+v, %v", gp, err)
	}
	if _, err := LookupProfessional("surgeon"); err == nil {
		t.Fatal("unknown persona accepted")
	}
	fam, err := LookupPatient("family")
	if err != nil || len(fam.Beneficiaries) != 2 {
		t.Fatalf("family = %+v, %v", fam, err)
	}
	fam.Beneficiaries[0].Surname = "CHANGED"
	again, _ := LookupPatient("family")
	if again.Beneficiaries[0].Surname != "ADRUN" {
		t.Fatal("LookupPatient shares its slice with callers")
	}
}
