package schemas

import (
	"context"
	"errors"
	"testing"
)

func TestValidate(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	good := []byte(`<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body/></soap:Envelope>`)
	if err := Validate(ctx, "soap/soap-1.2-envelope.xsd", good); err != nil {
		t.Fatal(err)
	}
	bad := []byte(`<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Nobody/></soap:Envelope>`)
	var inv *InvalidError
	if err := Validate(ctx, "soap/soap-1.2-envelope.xsd", bad); !errors.As(err, &inv) {
		t.Fatalf("invalid envelope: got %v", err)
	}
}

func TestBodyChild(t *testing.T) {
	env := []byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:h="urn:hl7-org:v3"><s:Body><h:X a="h:CE"><h:Y/></h:X></s:Body></s:Envelope>`)
	got, err := BodyChild(env)
	if err != nil {
		t.Fatal(err)
	}
	want := `<h:X a="h:CE" xmlns:h="urn:hl7-org:v3" xmlns:s="http://www.w3.org/2003/05/soap-envelope"><h:Y/></h:X>`
	if string(got) != want && string(got) != `<h:X a="h:CE" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:h="urn:hl7-org:v3"><h:Y/></h:X>` {
		t.Fatalf("got %s", got)
	}
}
