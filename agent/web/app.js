// dmpagent's local page: status, PIN entry, pairing approval. It talks
// only to the agent that served it (/ui/api/…), same origin, no token.
"use strict";

const $ = (id) => document.getElementById(id);

const cardTypes = {
  cps: "carte CPS",
  vitale: "carte Vitale",
  piv: "jeton PIV",
  unknown: "carte non reconnue",
};

async function call(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) {
    const err = new Error((data && data.error && data.error.message) || resp.statusText);
    err.code = data && data.error && data.error.code;
    err.details = (data && data.error && data.error.details) || {};
    err.status = resp.status;
    throw err;
  }
  return data;
}

function text(el, value) { el.textContent = value; }

function show(el, visible) { el.hidden = !visible; }

function renderReaders(readers) {
  const ul = $("readers");
  ul.replaceChildren();
  if (!readers || readers.length === 0) {
    const li = document.createElement("li");
    li.textContent = "Aucun lecteur de carte détecté.";
    ul.append(li);
    return;
  }
  for (const r of readers) {
    const li = document.createElement("li");
    li.className = "reader";
    li.dataset.card = r.card ? r.card.type : "empty";
    const card = r.card ? (cardTypes[r.card.type] || r.card.type) : "vide";
    li.textContent = r.name + " : " + card;
    ul.append(li);
  }
}

function renderStatus(st) {
  const agentState = $("agent-state");
  agentState.dataset.state = "open";
  text(agentState, "Agent en marche.");
  text($("pcsc"), st.pcsc === "ok" ? "disponible" : "indisponible : " + st.pcsc);
  text($("outbox"), String(st.outbox_depth));
  text($("version"), st.version);
  show($("simulation"), !!st.simulation);
  renderReaders(st.readers);

  const cps = $("cps");
  if (st.cps) {
    text(cps, "Carte de " + st.cps.given_name + " " + st.cps.surname + " (" + (st.cps.profession_label || "professionnel de santé") +
      ", n° " + st.cps.id_nat + ")" + (st.cps.test ? " — carte de test" : ""));
  } else if (st.cps_error) {
    text(cps, "Carte CPS illisible : " + st.cps_error);
  } else {
    text(cps, "Aucune carte CPS insérée.");
  }
  const sessionState = $("session-state");
  if (st.session) {
    sessionState.dataset.state = "open";
    text(sessionState, "Session ouverte pour " + st.session.given_name + " " + st.session.surname + ".");
  } else {
    sessionState.dataset.state = "closed";
    text(sessionState, "Aucune session ouverte.");
  }
  show($("login-form"), !!st.cps && !st.session);
  show($("logout"), !!st.session);

  const ul = $("pairings");
  ul.replaceChildren();
  if (!st.pairings || st.pairings.length === 0) {
    const li = document.createElement("li");
    li.textContent = "Aucune demande en attente.";
    ul.append(li);
  }
  for (const p of st.pairings || []) {
    const li = document.createElement("li");
    li.className = "pairing";
    const until = new Date(p.expires).toLocaleTimeString("fr-FR");
    li.textContent = p.app + (p.origin ? " (" + p.origin + ")" : "") + " — demande valable jusqu'à " + until;
    ul.append(li);
  }
}

async function refresh() {
  try {
    renderStatus(await call("GET", "/ui/api/status"));
  } catch (e) {
    const s = $("agent-state");
    s.dataset.state = "down";
    text(s, "L'agent ne répond pas : " + e.message);
  }
}

function pinMessage(e) {
  switch (e.code) {
    case "pin_incorrect":
      if (e.details.tries_left !== undefined) {
        const n = e.details.tries_left;
        return "Code PIN incorrect. Il reste " + n + (n > 1 ? " essais" : " essai") + " avant le blocage de la carte.";
      }
      return "Code PIN incorrect.";
    case "pin_blocked":
      return "La carte est bloquée : débloquez-la avec son code PUK.";
    case "pin_format":
      return "Le code PIN doit comporter 4 chiffres.";
    case "cps_required":
      return "Insérez la carte CPS.";
    default:
      return e.message;
  }
}

async function login(ev) {
  ev.preventDefault();
  const input = $("pin");
  const pin = input.value;
  input.value = "";
  show($("session-error"), false);
  $("login").disabled = true;
  try {
    await call("POST", "/ui/api/session", { pin });
  } catch (e) {
    text($("session-error"), pinMessage(e));
    show($("session-error"), true);
  } finally {
    $("login").disabled = false;
    refresh();
  }
}

async function logout() {
  await call("DELETE", "/ui/api/session").catch(() => {});
  refresh();
}

async function decide(approve) {
  const input = $("pairing-code");
  const code = input.value.trim();
  const out = $("pairing-result");
  if (!code) {
    input.focus();
    return;
  }
  try {
    const p = await call("POST", approve ? "/ui/api/pairings/approve" : "/ui/api/pairings/deny", { code });
    out.className = "ok";
    text(out, (approve ? "Accès autorisé pour « " : "Demande refusée pour « ") + p.app + " ».");
    input.value = "";
  } catch (e) {
    out.className = "error";
    text(out, e.code === "pairing_not_found" ? "Aucune demande en attente ne porte ce code (elle a peut-être expiré)." : e.message);
  }
  show(out, true);
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("pairing-form").addEventListener("submit", (ev) => { ev.preventDefault(); decide(true); });
  $("deny").addEventListener("click", () => decide(false));
  refresh();
  const events = new EventSource("/ui/api/events");
  events.onmessage = refresh;
  for (const name of ["reader.added", "reader.removed", "card.inserted", "card.removed", "session.opened",
    "session.closed", "submission.updated", "pairing.requested", "pcsc.lost", "pcsc.restored"]) {
    events.addEventListener(name, refresh);
  }
});
