// Package agent is the dmpagent service: it watches the card readers,
// holds the professional's session on the CPS, talks to the DMP, and serves
// the localhost API (DESIGN §3) and the agent's own page.
//
// Files by what they own:
//   - agent.go: wiring (New, Serve), the data directory, graceful shutdown.
//   - config.go: the configuration file, environment and validation.
//   - server.go: the route table and the checks every request passes
//     (Host, Origin, token, body size, idempotency, audit).
//   - tokens.go, pairing.go, control_*.go, peercred_*.go: who may call —
//     application tokens (stored hashed), pairing, and the admin socket
//     checked by the peer's credentials.
//   - cards.go, session.go: readers, the CPS and Vitale cards, the
//     professional session (PIN login, mutual TLS, the DMP client).
//   - dmpapi.go, feed.go: the DMP routes; feeds go through the outbox.
//   - events.go: Server-Sent Events. page.go and web/: the local page.
//   - admin.go, doctor.go, errors.go, idempotency.go: the rest.
//
// Subpackages: api (wire types), client (the typed client the CLI uses),
// audit (hash-chained log), consent (signed consent receipts), outbox
// (persistent delivery queue).
package agent
