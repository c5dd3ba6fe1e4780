// Package vitale emulates a Vitale 2 card (the French health insurance card)
// for the simulation. The emulator carries a persona's beneficiaries. The
// host-side decoder that reads one the way a PC/SC program does is the
// agent's own, cardreader.ReadVitaleWith: it is pure logic over a
// send-one-APDU function, so the same code reads this emulator in tests,
// through pcscd + vpcd, and a real card. This package's tests run it
// against damaged variants of the emulated card.
//
// # Where the layout comes from
//
// No official description of the Vitale 2 file system is public (products read
// the card through the licensed SESAM-Vitale API). What is public is how the
// cardpeek tool reads one, and we follow it byte for byte where it says
// something. Sources, all in the GitHub repository L1L1/cardpeek at commit
// de8cee2:
//
//   - dot_cardpeek_dir/scripts/vitale_2.lua: the two application identifiers
//     "VITALE" (D2 50 00 00 02 56 49 54 41 4C 45) and "MF_VITALE"
//     (D2 50 00 00 02 4D 46 5F 56 49 54 41 4C 45); the reading sequence
//     (SELECT VITALE by AID, SELECT EF 2001, READ BINARY it, follow it); the
//     shape of EF 2001, E0 { A0 { 82 … } 80 … 80 … }, where each 82 value is
//     a 2-byte application index, 2 bytes the script skips, then the AID, and
//     each 80 value is an 8-character file name, the 2-byte application index
//     and the 2-byte EF identifier; that DIR 2F00 and PAN 2F02 sit in
//     MF_VITALE and the pointer file 2001 in VITALE without being listed in
//     the table; the data objects it names: 65 beneficiary { 93 NIR, 80 name,
//     81 first name, 82 birth date, 90 nationality }, 66 card { 80 start of
//     validity }, plus 7F21/5F37/5F38 (a card-verifiable certificate, not
//     emulated); dates are ASCII YYYYMMDD (ui_parse_asciidate) and text is
//     shown as printable ASCII (ui_parse_printable, bytes.format "%P"); files
//     are read in 256-byte steps until a step returns fewer than 256 bytes or
//     a status other than 9000, a failed step after the first one ending the
//     file without error.
//   - dot_cardpeek_dir/scripts/lib/apdu.lua and iso7816.c: the APDUs behind
//     that script. card.select("#AID") sends 00 A4 04 00 Lc AID and
//     card.select(".2001") sends 00 A4 02 00 02 20 01 (P1 04 by name, 02 EF
//     under the current DF, P2 00; the newest apdu.lua appends Le 00, older
//     ones do not, so both forms are answered); card.read_binary(".", off)
//     sends 00 B0 (off>>8)&7F off&FF 00. lua_card.c sets card.CLA to 00: the
//     only class this card answers.
//   - DESIGN §5: the Vitale 2 ATR pattern 3B 75 13 00 00 4x 09 EA 90 00 (T=0
//     only: no TD1), and that the card has no PIN.
//
// A 2026 reader in the ukinoki/Rufus repository (lecteurvitale.cpp) reads the
// names from short file 2 of the MF and the NIR from short file 2 of VITALE;
// that hints that real cards spread a beneficiary over two files. This
// emulator keeps each beneficiary in one record, as DESIGN §5 describes it.
//
// # Our choices, where nothing public says
//
//   - MF_VITALE is the master file (3F00): ISO 7816-4 puts EF.DIR 2F00 in the
//     MF, and cardpeek finds DIR there. VITALE is a DF under it, reachable by
//     AID only. After reset the MF is current and no EF is selected.
//   - The pointer table lists application 0001 = MF_VITALE, 0002 = VITALE; the
//     two bytes cardpeek skips are 00 00. It lists two files: "CARTE   "
//     (EF 2002 in MF_VITALE: the 66 card template) and "IDENTITE" (EF 2004 in
//     VITALE: one 65 template per beneficiary). The names and identifiers are
//     ours.
//   - IDENTITE is a fixed-size EF padded with 00 to at least 512 bytes, as a
//     transparent EF on a real card is, so a full read takes 256-byte steps
//     and ends on 6B00 exactly at the end of the file.
//   - Text is uppercase ASCII without accents (see CardText): cardpeek shows
//     these fields as printable ASCII only, and Vitale cards print names in
//     capitals. The decoder still reads bytes above 7F as Latin-1 rather than
//     failing on a card that stores accents.
//   - 90 nationality holds "FR"; its real coding is not public.
//   - Inside 65 we add 83 rank (ASCII digits) and 84 quality (the persona's
//     word in capitals: "INSURED", "CHILD"): the agent's API reports a rank,
//     and no public source shows where a real card keeps it. A real card may use these tags for other
//     things, so the decoder ignores values that do not fit.
//   - PAN 2F02 holds the card serial as ISO 7816-6 tag 5A (BCD, F-padded);
//     DIR 2F00 holds one ISO 7816-4 application template 61 { 4F AID, 50
//     label } per application.
//   - SELECT answers no FCI (cardpeek shows what it gets; opensc-tool over
//     T=0 must see a bare 9000). No file has a short EF identifier.
package vitale

// ATR is the emulated card's answer to reset: the Vitale 2 pattern
// 3B 75 13 00 00 4x 09 EA 90 00 (DESIGN §5) with x = 7.
var ATR = []byte{0x3B, 0x75, 0x13, 0x00, 0x00, 0x47, 0x09, 0xEA, 0x90, 0x00}

// Application identifiers, from cardpeek's vitale_2.lua.
var (
	AIDVitale   = []byte{0xD2, 0x50, 0x00, 0x00, 0x02, 'V', 'I', 'T', 'A', 'L', 'E'}
	AIDMFVitale = []byte{0xD2, 0x50, 0x00, 0x00, 0x02, 'M', 'F', '_', 'V', 'I', 'T', 'A', 'L', 'E'}
)

// File identifiers. 2001, 2F00 and 2F02 come from cardpeek; 2002 and 2004
// are ours.
const (
	FIDMF       uint16 = 0x3F00
	FIDPointers uint16 = 0x2001 // in VITALE
	FIDDir      uint16 = 0x2F00 // in MF_VITALE
	FIDPAN      uint16 = 0x2F02 // in MF_VITALE
	FIDCard     uint16 = 0x2002 // in MF_VITALE, listed as "CARTE   "
	FIDIdentity uint16 = 0x2004 // in VITALE, listed as "IDENTITE"
)

// Data object tags.
const (
	tagPointers    = 0xE0 // EF 2001: the whole table
	tagAppList     = 0xA0 // EF 2001: the applications
	tagAppEntry    = 0x82 // in A0: index(2) 00 00 AID
	tagFileEntry   = 0x80 // in E0: name(8) index(2) FID(2)
	tagBeneficiary = 0x65
	tagNIR         = 0x93
	tagSurname     = 0x80
	tagGivenName   = 0x81
	tagBirthDate   = 0x82
	tagNationality = 0x90
	tagRank        = 0x83 // ours
	tagQuality     = 0x84 // ours
	tagCard        = 0x66
	tagValidFrom   = 0x80 // in 66
	tagAppTemplate = 0x61 // EF.DIR, ISO 7816-4
	tagAID         = 0x4F
	tagLabel       = 0x50
	tagPAN         = 0x5A // ISO 7816-6
)
