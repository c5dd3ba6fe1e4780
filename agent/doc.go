// Package agent will hold the dmpagent service: wiring, configuration, the
// localhost API and its security checks, consent capture, the outbox, the
// audit log and the event stream (DESIGN §2–§4). It is empty until the
// issue that builds it.
package agent
