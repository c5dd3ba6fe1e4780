// Package dmp will hold the DMP client: SOAP 1.2 with WS-Addressing and a
// VIHF SAML assertion, XDS.b transactions and HL7v3 patient queries
// (DESIGN §6). It is empty until the issue that builds it.
package dmp
