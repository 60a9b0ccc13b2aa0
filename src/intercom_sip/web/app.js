"use strict";
// The page for installers and residents: a client of the API like any other.
// The token lives in sessionStorage: it survives a reload of this tab and ends with the
// tab; it is never written to disk like localStorage, never shared with other tabs, and
// never put in a URL (the events come by fetch, with the token in a header).
// Everything shown is set with textContent: a remote party's name comes from the network.

const API = "/api/v1";
const TOKEN_KEY = "intercom-sip.token";
const RETRY_FIRST = 500; // ms before reconnecting the events, doubled up to RETRY_MAX
const RETRY_MAX = 5000;
const MAX_FRAME = 1 << 20; // a frame longer than this means a broken stream: start again
const LOG_ROWS = 20;
// The call log is written just after a call ends, on the service's own time: the page
// looks for the ended call's row this often at most, this far apart.
const LOG_LOOKS = 10;
const LOG_WAIT = 200; // ms

// The settings form: field name in the API -> input id (nested names with a dot).
const FIELDS = [
  ["enable", "f-enable", "bool"],
  ["proxy", "f-proxy", "text"],
  ["realm", "f-realm", "text"],
  ["user", "f-user", "text"],
  ["password", "f-password", "password"],
  ["transport", "f-transport", "text"],
  ["user_id", "f-user_id", "text"],
  ["is_enable_ring_code", "f-is_enable_ring_code", "bool"],
  ["timeout", "f-timeout", "int"],
  ["registration_interval", "f-registration_interval", "int"],
  ["stun.ip", "f-stun-ip", "text"],
  ["stun.port", "f-stun-port", "int"],
];

const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  settings: null, // as the service last said them
  dirty: false, // the user changed the form since it was filled
  touched: new Set(), // the inputs the user changed since then (their ids)
  pending: null, // settings changed elsewhere while the user was typing
  call: null,
  callAt: 0, // when the call status arrived (ms, this page's clock)
  stream: null, // the AbortController of the events' fetch
  generation: 0, // bumped at each login/logout: an old stream loop stops
};

// --- the API ------------------------------------------------------------------------------

class LoggedOut extends Error {}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + state.token };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const reply = await fetch(API + path, init);
  if (reply.status === 401) {
    sessionEnded();
    throw new LoggedOut();
  }
  let answer = {};
  try {
    answer = await reply.json();
  } catch (_) {
    answer = { error: "The service answered " + reply.status };
  }
  return { ok: reply.ok, status: reply.status, answer };
}

// Runs an action; a LoggedOut has already brought the login form back.
function guarded(action) {
  return async (event) => {
    try {
      await action(event);
    } catch (error) {
      if (!(error instanceof LoggedOut)) console.error(error);
    }
  };
}

// --- login and logout ----------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  const error = $("login-error");
  error.textContent = "";
  const user = $("login-user").value;
  const password = $("login-password").value;
  if (!user || !password) {
    error.textContent = "Enter the user and the password.";
    return;
  }
  const query = new URLSearchParams({ username: user, password: md5(password) });
  let reply;
  try {
    reply = await fetch(API + "/login?" + query, { cache: "no-store" });
  } catch (_) {
    error.textContent = "The device does not answer.";
    return;
  }
  const answer = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    error.textContent = answer.error || "Login failed (" + reply.status + ")";
    $("login-password").select();
    return;
  }
  $("login-password").value = "";
  state.token = answer.token;
  sessionStorage.setItem(TOKEN_KEY, state.token);
  enter();
}

async function logout() {
  try {
    await api("GET", "/logout");
  } catch (_) {
    // a 401 or no answer: logged out all the same
  }
  leave("You are logged out.");
}

function sessionEnded() {
  if (state.token) leave("Your session ended: log in again.");
}

function leave(note) {
  state.token = null;
  state.generation += 1;
  sessionStorage.removeItem(TOKEN_KEY);
  if (state.stream) state.stream.abort();
  state.settings = null;
  state.dirty = false;
  state.touched = new Set();
  $("app-view").hidden = true;
  $("logout").hidden = true;
  $("link").hidden = true;
  $("login-view").hidden = false;
  $("login-note").textContent = note;
  $("login-password").focus();
}

function enter() {
  state.generation += 1;
  $("login-view").hidden = true;
  $("login-note").textContent = "";
  $("app-view").hidden = false;
  $("logout").hidden = false;
  $("link").hidden = false;
  $("main").focus();
  follow(state.generation);
  for (const load of [loadSettings, loadCalls, loadHistory, loadAutoAnswer]) guarded(load)();
}

// The events bring the settings too; this is for when no stream can be had (the cap).
async function loadSettings() {
  const { ok, answer } = await api("GET", "/device/sip/settings");
  if (ok && state.settings === null) fillSettings(answer, state.touched);
}

// --- live events -------------------------------------------------------------------------

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

// Reads the events until logout; reconnects by itself when the stream ends or breaks
// (a restart of the service: then the token is gone too, and the 401 brings the login).
async function follow(generation) {
  let retry = RETRY_FIRST;
  while (state.token && generation === state.generation) {
    showLink("connecting…", "wait");
    try {
      if (await readEvents()) retry = RETRY_FIRST;
    } catch (error) {
      if (error instanceof LoggedOut || generation !== state.generation) return;
    }
    if (generation !== state.generation) return;
    showLink("reconnecting…", "wait");
    await sleep(retry);
    retry = Math.min(retry * 2, RETRY_MAX);
  }
}

// One stream, to its end. True when it was open (events were read).
async function readEvents() {
  const controller = new AbortController();
  state.stream = controller;
  const reply = await fetch(API + "/events", {
    headers: { Authorization: "Bearer " + state.token },
    cache: "no-store",
    signal: controller.signal,
  });
  if (reply.status === 401) {
    sessionEnded();
    throw new LoggedOut();
  }
  if (!reply.ok || !reply.body) return false;
  showLink("live", "live");
  const reader = reply.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return true;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      dispatch(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
    if (buffer.length > MAX_FRAME) {
      controller.abort();
      return true;
    }
  }
}

function dispatch(frame) {
  let kind = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (line.startsWith(":")) continue; // a keep-alive comment
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "event") kind = value;
    else if (name === "data") data.push(value);
  }
  if (!data.length) return;
  const payload = JSON.parse(data.join("\n"));
  const handlers = { registration: showRegistration, call: showCall, settings: settingsEvent };
  if (handlers[kind]) handlers[kind](payload);
}

function showLink(text, kind) {
  const link = $("link");
  link.textContent = text;
  link.dataset.state = kind;
}

// --- registration ------------------------------------------------------------------------

function showRegistration(status) {
  const badge = $("reg-state");
  badge.textContent = status.state;
  badge.dataset.state = status.state;
  $("reg-sip-status").textContent = status.sip_status;
  $("reg-code").textContent = orDash(status.code);
  $("reg-reason").textContent = orDash(status.reason);
  $("reg-contact").textContent = orDash(status.contact);
  $("reg-public").textContent = orDash(status.public_address);
  $("reg-transport").textContent = orDash(status.transport);
  $("reg-next").textContent = status.next_refresh ? clock(status.next_refresh) : "–";
}

async function reregister() {
  const message = $("reg-message");
  message.textContent = "";
  const { ok, answer } = await api("POST", "/device/sip/reregister");
  message.textContent = ok ? "REGISTER sent." : answer.error;
}

// --- the call ----------------------------------------------------------------------------

function showCall(call) {
  const before = state.call || { state: "idle", id: null };
  state.call = call;
  state.callAt = Date.now();
  const badge = $("call-state");
  badge.textContent = call.state === "idle" ? "idle" : call.state + " — " + call.remote;
  badge.dataset.state = call.state;
  $("call-remote").textContent = orDash(call.remote);
  $("call-direction").textContent = { in: "incoming", out: "outgoing" }[call.direction] || "–";
  $("call-dtmf").textContent = call.dtmf_received || "–";
  $("answer").disabled = !(call.state === "ringing" && call.direction === "in");
  $("hangup").disabled = call.state === "idle";
  for (const key of $("keypad").querySelectorAll("button")) key.disabled = call.state !== "active";
  tick();
  if (before.state !== "idle" && call.state === "idle") guarded(loadCalls)(before.id);
}

// The duration counts between events: from the last status and this page's clock.
function tick() {
  const call = state.call;
  if (!call || call.state !== "active" || call.duration === null) {
    $("call-duration").textContent = "–";
    $("call-left").textContent = "–";
    return;
  }
  const duration = call.duration + Math.floor((Date.now() - state.callAt) / 1000);
  $("call-duration").textContent = span(duration);
  const limit = call.ends_at !== null ? call.ends_at - call.answered : null;
  $("call-left").textContent = limit === null ? "–" : span(Math.max(0, limit - duration));
}

async function callAction(path, body) {
  const error = $("call-error");
  error.textContent = "";
  const { ok, answer } = await api("POST", path, body);
  if (ok) showCall(answer);
  else error.textContent = answer.error;
  return ok;
}

async function dial(event) {
  event.preventDefault();
  const input = $("dial-number");
  $("dial-error").textContent = "";
  const { ok, answer } = await api("POST", "/call/dial", { number: input.value.trim() });
  if (ok) showCall(answer);
  else $("dial-error").textContent = answer.error;
}

async function loadAutoAnswer() {
  const { ok, answer } = await api("GET", "/device/call/auto_answer");
  if (ok) $("auto-answer").checked = answer.is_enabled;
}

async function setAutoAnswer() {
  const box = $("auto-answer");
  const { ok, answer } = await api("POST", "/device/call/auto_answer", { is_enabled: box.checked });
  if (ok) box.checked = answer.is_enabled;
  else {
    box.checked = !box.checked;
    $("call-error").textContent = answer.error;
  }
}

// --- settings ----------------------------------------------------------------------------

function settingsEvent(settings) {
  const first = state.settings === null;
  const changed = !first && JSON.stringify(settings) !== JSON.stringify(state.settings);
  if (first) {
    fillSettings(settings, state.touched); // what the user typed before they came stays
  } else if (!state.dirty) {
    fillSettings(settings);
  } else if (changed) {
    state.pending = settings; // what the user typed stays; they choose
    $("settings-changed").hidden = false;
  }
  if (changed) guarded(loadHistory)();
}

// Every field, or all but those in `keep` (what the user typed before the first settings).
function fillSettings(settings, keep = new Set()) {
  state.settings = settings;
  state.dirty = keep.size > 0;
  state.touched = new Set(keep);
  $("settings-changed").hidden = true;
  for (const [name, id, kind] of FIELDS) {
    if (keep.has(id)) continue;
    const input = $(id);
    const value = valueAt(settings, name);
    if (kind === "bool") input.checked = value;
    else if (kind === "password") {
      input.value = "";
      input.placeholder = value ? "stored (unchanged)" : "none stored";
    } else input.value = String(value);
  }
  clearErrors();
}

function readForm() {
  const body = { stun: {} };
  for (const [name, id, kind] of FIELDS) {
    const input = $(id);
    let value;
    if (kind === "bool") value = input.checked;
    else if (kind === "int") value = /^-?[0-9]+$/.test(input.value.trim()) ? Number(input.value) : input.value;
    else if (kind === "password") value = input.value || state.settings.password; // "WebPass" keeps it
    else value = input.value;
    if (name.startsWith("stun.")) body.stun[name.slice(5)] = value;
    else body[name] = value;
  }
  return body;
}

async function saveSettings(event) {
  event.preventDefault();
  clearErrors();
  $("settings-saved").textContent = "";
  const { ok, status, answer } = await api("POST", "/device/sip/settings", readForm());
  if (ok) {
    fillSettings(answer);
    $("settings-saved").textContent = "Saved.";
    await loadHistory();
    return;
  }
  showSettingsError(status, answer.error);
}

// The contract names the field in backquotes: the message goes beside it.
function showSettingsError(status, message) {
  const named = /`([a-z_.]+)`/.exec(message || "");
  const field = named && FIELDS.find(([name]) => name === named[1]);
  if (!field) {
    $("settings-error").textContent = message || "The service answered " + status;
    return;
  }
  const input = $(field[1]);
  input.setAttribute("aria-invalid", "true");
  $(field[1].replace(/^f-/, "e-")).textContent = message;
  input.focus();
}

function clearErrors() {
  for (const [, id] of FIELDS) {
    $(id).removeAttribute("aria-invalid");
    $(id.replace(/^f-/, "e-")).textContent = "";
  }
  $("settings-error").textContent = "";
}

// --- the logs ----------------------------------------------------------------------------

// `ended`: the id of the call that just ended, whose row may not be written yet.
async function loadCalls(ended) {
  for (let look = 1; look <= LOG_LOOKS; look++) {
    const calls = await showCalls();
    if (!calls || !ended || calls.some((call) => call.id === ended)) return;
    await sleep(LOG_WAIT);
  }
}

async function showCalls() {
  const { ok, answer } = await api("GET", "/call/history?limit=" + LOG_ROWS);
  if (!ok) return null;
  const rows = answer.calls.map((call) => [
    clock(call.started),
    call.direction === "in" ? "in" : "out",
    call.remote,
    call.duration === null ? "not answered" : span(call.duration),
    call.end_reason + (call.code ? " (" + call.code + ")" : ""),
  ]);
  fillTable("calls-rows", "calls-empty", rows);
  return answer.calls;
}

async function loadHistory() {
  const { ok, answer } = await api("GET", "/device/sip/settings/history?limit=" + LOG_ROWS);
  if (!ok) return;
  const rows = answer.changes.map((change) => {
    const s = change.settings;
    return [
      clock(change.at),
      change.actor,
      s.user ? s.user + "@" + s.realm + " via " + s.proxy + " (" + s.transport + ")" : "–",
      s.enable ? "on" : "off",
      change.password_changed ? "changed" : "kept",
    ];
  });
  fillTable("history-rows", "history-empty", rows);
}

function fillTable(bodyId, emptyId, rows) {
  const body = $(bodyId);
  body.replaceChildren(
    ...rows.map((cells) => {
      const tr = document.createElement("tr");
      for (const cell of cells) {
        const td = document.createElement("td");
        td.textContent = cell;
        tr.append(td);
      }
      return tr;
    }),
  );
  $(emptyId).hidden = rows.length > 0;
}

// --- small helpers -----------------------------------------------------------------------

function valueAt(object, dotted) {
  return dotted.split(".").reduce((inner, key) => inner[key], object);
}

function orDash(value) {
  return value === null || value === undefined || value === "" ? "–" : String(value);
}

function clock(unix) {
  return new Date(unix * 1000).toLocaleString(undefined, {
    dateStyle: "short",
    timeStyle: "medium",
  });
}

function span(seconds) {
  const m = Math.floor(seconds / 60);
  const s = String(seconds % 60).padStart(2, "0");
  return m + ":" + s;
}

// --- wiring ------------------------------------------------------------------------------

function start() {
  $("login-form").addEventListener("submit", guarded(login));
  $("logout").addEventListener("click", guarded(logout));
  $("reregister").addEventListener("click", guarded(reregister));
  $("answer").addEventListener("click", guarded(() => callAction("/call/answer")));
  $("hangup").addEventListener("click", guarded(() => callAction("/call/hangup")));
  $("dial-form").addEventListener("submit", guarded(dial));
  $("keypad").addEventListener(
    "click",
    guarded((event) => {
      const digit = event.target.closest("button[data-digit]");
      if (digit) return callAction("/call/dtmf", { digits: digit.dataset.digit });
    }),
  );
  $("auto-answer").addEventListener("change", guarded(setAutoAnswer));
  $("settings-form").addEventListener("submit", guarded(saveSettings));
  $("settings-form").addEventListener("input", (event) => {
    state.dirty = true;
    state.touched.add(event.target.id);
  });
  $("settings-reload").addEventListener("click", () => fillSettings(state.pending));
  setInterval(tick, 1000);
  if (state.token) enter();
  else $("login-password").focus();
}

start();
