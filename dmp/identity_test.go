package dmp

import (
	"testing"
)

func TestParseCX(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want INS
		ok   bool
	}{
		{"207058575627097^^^&1.2.250.1.213.1.4.10&ISO^NH", INS{"207058575627097", OIDINSNIRTest}, true},
		{"207058575627097^^^&1.2.250.1.213.1.4.10&ISO^NH^^20100907", INS{"207058575627097", OIDINSNIRTest}, true},
		{"180032B02040123^^^&1.2.250.1.213.1.4.8&ISO^NH", INS{"180032B02040123", OIDINSNIR}, true},
		{"207058575627097^^^&1.2.250.1.213.1.4.2&ISO^NH", INS{}, false},  // INS-C is not an INS authority here
		{"20705857562709^^^&1.2.250.1.213.1.4.10&ISO^NH", INS{}, false},  // 14 characters
		{"2070585756270X7^^^&1.2.250.1.213.1.4.10&ISO^NH", INS{}, false}, // letter outside Corsica's
		{"207058575627097^^^&1.2.250.1.213.1.4.10&ISO^PI", INS{}, false}, // not a national health id
		{"207058575627097^^^1.2.250.1.213.1.4.10^NH", INS{}, false},      // no ISO authority
		{"", INS{}, false},
	} {
		got, err := ParseCX(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseCX(%q) = %+v, %v", tc.in, got, err)
		}
		if tc.ok && got.CX() != tc.in[:len(got.CX())] {
			t.Errorf("CX() = %q", got.CX())
		}
	}
}

func TestProfessionalValid(t *testing.T) {
	gp := Professional{IDNat: "899900063480", Surname: "LIBRE", GivenName: "Max", Profession: "10", Specialty: "SM26", StructureID: "499900063480001", Sector: "SA07"}
	if err := gp.Valid(); err != nil {
		t.Fatal(err)
	}
	if got := gp.AuthorSpecialty(); got != "G15_10/SM26" {
		t.Fatalf("AuthorSpecialty %q", got)
	}
	noSpec := gp
	noSpec.Specialty = ""
	if noSpec.Valid() == nil {
		t.Fatal("a physician without a specialty is valid")
	}
	nurse := Professional{IDNat: "899900070037", Surname: "SOINS", GivenName: "Julie", Profession: "60", StructureID: "499900070037001", Sector: "SA07"}
	if err := nurse.Valid(); err != nil || nurse.AuthorSpecialty() != "G15_60" {
		t.Fatalf("nurse: %v %q", err, nurse.AuthorSpecialty())
	}
	noStruct := nurse
	noStruct.StructureID = ""
	if noStruct.Valid() == nil {
		t.Fatal("no structure is valid")
	}
}

func FuzzParseCX(f *testing.F) {
	f.Add("207058575627097^^^&1.2.250.1.213.1.4.10&ISO^NH")
	f.Add("^^^&&ISO^NH")
	f.Fuzz(func(t *testing.T, s string) {
		ins, err := ParseCX(s)
		if err != nil {
			return
		}
		if ins.Valid() != nil {
			t.Fatalf("ParseCX accepted an invalid INS %+v", ins)
		}
		back, err := ParseCX(ins.CX())
		if err != nil || back != ins {
			t.Fatalf("round trip of %+v: %+v %v", ins, back, err)
		}
	})
}
