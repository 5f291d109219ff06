// onramp fleet dashboard. Plain JavaScript, no framework, no network beyond
// this cloud: the page reads and changes the fleet through the cloud's admin
// API (docs/protocol.md section 4) with its session cookie, and sends the
// session's CSRF token with every change. Text from devices is only ever
// set as text (textContent), never as markup.
"use strict";

const REFRESH_MS = 3000;
const state = { csrf: null, who: null, timer: null, fleet: null, devices: [], sites: [] };

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells, cls) {
  const tr = el("tr", null, cls);
  for (const c of cells) {
    const td = el("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c === null ? "–" : String(c);
    tr.appendChild(td);
  }
  return tr;
}

function when(text) {
  if (!text) return "–";
  const d = new Date(text);
  return isNaN(d) ? text : d.toLocaleString();
}

function say(text) { $("status").textContent = text || ""; }

// One request to this cloud. A 401 means the session is gone: back to login.
async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const resp = await fetch(path, {
    method, headers, credentials: "same-origin", cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let doc = null;
  try { doc = await resp.json(); } catch (e) { doc = null; }
  if (resp.status === 401 && !path.startsWith("/ui/api/login")) {
    showLogin("Your session has ended: log in again.");
    throw new Error("not logged in");
  }
  if (!resp.ok) {
    const msg = doc && doc.error ? doc.error.message : `${resp.status} ${resp.statusText}`;
    throw new Error(msg);
  }
  return doc;
}

function stopRefresh() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

function showOnly(id) {
  for (const p of ["login-page", "fleet-page", "device-page", "sites-page", "audit-page"])
    $(p).hidden = p !== id;
  for (const [link, page] of [["nav-fleet", "fleet-page"], ["nav-sites", "sites-page"],
    ["nav-audit", "audit-page"]]) {
    if (page === id) $(link).setAttribute("aria-current", "page");
    else $(link).removeAttribute("aria-current");
  }
}

function showLogin(message) {
  stopRefresh();
  state.csrf = null;
  state.who = null;
  $("nav").hidden = true;
  showOnly("login-page");
  $("login-error").textContent = message || "";
  say("");
  $("token").focus();
}

// ---- fleet ----------------------------------------------------------------

function attention(d, stuck) {
  if (d.last_error && d.stage !== "running") return "error";
  if (stuck.has(d.serial)) return "stuck";
  return "";
}

function renderFleet() {
  const fleet = state.fleet;
  if (!fleet) return;
  const cards = $("stage-counts");
  cards.replaceChildren();
  let total = 0;
  for (const n of Object.values(fleet.stages)) total += n;
  const card = (label, n, id) => {
    const c = el("div", null, "card");
    if (id) c.id = id;
    c.appendChild(el("span", n, "n"));
    c.appendChild(el("span", label, "label"));
    cards.appendChild(c);
  };
  card("devices", total, "count-total");
  for (const [stage, n] of Object.entries(fleet.stages).sort())
    card(stage, n, "count-" + stage);
  card("stuck", fleet.stuck.length, "count-stuck");
  card("alarms", fleet.alarms.length, "count-alarms");

  const alarms = $("alarms").tBodies[0];
  alarms.replaceChildren();
  for (const a of fleet.alarms) {
    const link = el("a", a.serial);
    link.href = "#/device/" + encodeURIComponent(a.serial);
    const badge = el("span", a.severity, "badge " + (a.severity === "critical" ? "bad" : "warn"));
    const acked = a.acknowledged ? `by ${a.acknowledged.by}, ${when(a.acknowledged.at)}` : "no";
    const actions = el("span", null, "actions");
    if (!a.acknowledged)
      actions.appendChild(alarmButton(a, "ack", "Acknowledge"));
    actions.appendChild(alarmButton(a, "clear", "Clear"));
    const tr = row([link, badge, a.alarm, when(a.since), acked, actions],
      a.acknowledged ? "" : "attention");
    tr.dataset.alarm = String(a.id);
    alarms.appendChild(tr);
  }
  if (!fleet.alarms.length) alarms.appendChild(row(["none", "", "", "", "", ""]));

  // The filters offer what the fleet has.
  const keep = (select, values) => {
    const chosen = select.value;
    select.replaceChildren(el("option", "all"));
    select.options[0].value = "";
    for (const v of values) {
      const o = el("option", v);
      o.value = v;
      select.appendChild(o);
    }
    select.value = values.includes(chosen) ? chosen : "";
  };
  const siteNames = [...new Set(state.devices.filter((d) => d.site)
    .map((d) => `${d.organization}/${d.site}`))].sort();
  keep($("f-site"), siteNames);
  keep($("f-stage"), Object.keys(fleet.stages).sort());

  renderDevices();

  const sites = $("site-counts").tBodies[0];
  sites.replaceChildren();
  for (const s of fleet.sites) {
    const name = s.site ? `${s.organization}/${s.site}` : "(not claimed)";
    const stages = Object.entries(s.stages).map(([k, v]) => `${k} ${v}`).join(", ");
    sites.appendChild(row([name, s.devices, s.stages.running || 0, stages]));
  }
}

function renderDevices() {
  const stuck = new Set(state.fleet ? state.fleet.stuck.map((s) => s.serial) : []);
  const site = $("f-site").value, stage = $("f-stage").value;
  const serial = $("f-serial").value.trim().toLowerCase();
  const rank = { error: 0, stuck: 1, "": 2 };
  const shown = state.devices
    .filter((d) => !site || `${d.organization}/${d.site}` === site)
    .filter((d) => !stage || d.stage === stage)
    .filter((d) => !serial || d.serial.toLowerCase().includes(serial))
    .map((d) => ({ d, why: attention(d, stuck) }))
    .sort((a, b) => rank[a.why] - rank[b.why] || a.d.serial.localeCompare(b.d.serial));
  const body = $("devices").tBodies[0];
  body.replaceChildren();
  for (const { d, why } of shown) {
    const link = el("a", d.serial);
    link.href = "#/device/" + encodeURIComponent(d.serial);
    let note = "";
    if (why === "error") note = el("span", d.last_error, "badge bad");
    else if (why === "stuck") note = el("span", "no progress", "badge warn");
    const tr = row([link, d.site ? `${d.organization}/${d.site}` : null, d.stage,
      when(d.last_seen), note], why === "error" ? "attention" : why);
    tr.dataset.serial = d.serial;
    body.appendChild(tr);
  }
  if (!shown.length) body.appendChild(row(["no device matches", "", "", "", ""]));
}

async function loadFleet() {
  try {
    const [fleet, devices] = await Promise.all([api("GET", "/v1/admin/fleet"),
      api("GET", "/v1/admin/devices")]);
    state.fleet = fleet;
    state.devices = devices.devices;
    renderFleet();
    say("Updated " + new Date().toLocaleTimeString());
  } catch (e) {
    if (state.who) say("Cannot update: " + e.message);
  }
}

// An operator's button on an alarm: acknowledge (it stays, marked) or clear
// (it leaves the list for the history), each after a confirmation.
function alarmButton(a, action, label) {
  const b = el("button", label);
  b.type = "button";
  b.id = `alarm-${action}-${a.id}`;
  b.setAttribute("aria-label", `${label} the alarm of ${a.serial}: ${a.alarm}`);
  b.addEventListener("click", async () => {
    const text = action === "ack"
      ? `Acknowledge the alarm of ${a.serial}: "${a.alarm}"? It stays listed, marked.`
      : `Clear the alarm of ${a.serial}: "${a.alarm}"? It leaves the list (kept in the history); ` +
        "the device raising it again makes a new one.";
    if (!(await confirmAction(text))) return;
    try {
      await api("POST", `/v1/admin/alarms/${a.id}/${action}`, {});
      say(`Alarm of ${a.serial} ${action === "ack" ? "acknowledged" : "cleared"}.`);
      loadFleet();
    } catch (e) { say("Refused: " + e.message); }
  });
  return b;
}

// ---- device ---------------------------------------------------------------

async function loadDevice(serial) {
  try {
    const path = "/v1/admin/devices/" + encodeURIComponent(serial);
    const [d, ev] = await Promise.all([api("GET", path), api("GET", path + "/events")]);
    let site = null;
    if (d.site) {
      try {
        site = await api("GET", `/v1/admin/organizations/${encodeURIComponent(d.organization)}` +
          `/sites/${encodeURIComponent(d.site)}`);
      } catch (e) { site = null; }
    }
    renderDevice(d, ev.events, site);
    say("Updated " + new Date().toLocaleTimeString());
  } catch (e) {
    if (state.who) say("Cannot read the device: " + e.message);
  }
}

function renderDevice(d, events, site) {
  $("device-title").textContent = "Device " + d.serial;
  const facts = $("device-facts");
  facts.replaceChildren();
  const fact = (k, v) => { facts.appendChild(el("dt", k)); facts.appendChild(el("dd", v === null || v === undefined || v === "" ? "–" : v)); };
  fact("Serial", d.serial);
  fact("Model", d.model);
  fact("Asset ID", d.asset_id || d.serial);
  fact("Site", d.site ? `${d.organization}/${d.site}` : "not claimed");
  fact("Stage", d.stage);
  fact("Conductor", site && site.conductor_addresses && site.conductor_addresses.length
    ? `${site.conductor_addresses.join(", ")} port ${site.conductor_port}` : null);
  fact("Last seen", when(d.last_seen));
  fact("Last error", d.last_error ? `${d.last_error} (${when(d.last_error_time)})` : null);
  fact("Locked until", d.locked_until ? when(d.locked_until) : null);
  // What the device said about its proxies: the one in use, and its alarms
  // still raised ("SEVERITY raised: TEXT" until a "SEVERITY cleared: TEXT").
  const using = events.filter((e) => e.step === "find-proxy" && e.outcome === "ok").pop();
  const raised = new Map();
  for (const e of events.filter((x) => x.step === "alarm" && x.reason)) {
    const m = /^(\w+) (raised|cleared): (.*)$/.exec(e.reason);
    const text = m ? m[3] : e.reason;
    if (!m || m[2] === "raised") raised.set(text, `${m ? m[1] : "alarm"}: ${text}`);
    else raised.delete(text);
  }
  let diag = using ? `using ${using.reason}` : "no proxy reported yet";
  if (raised.size) diag += `; alarms: ${[...raised.values()].join("; ")}`;
  fact("Proxy diagnostics", diag);
  $("act-claim").hidden = !!d.site;
  $("act-unclaim").hidden = !d.site;
  $("device-page").dataset.serial = d.serial;

  const list = $("timeline");
  list.replaceChildren();
  for (const e of events) {
    const li = el("li", null, e.outcome === "failed" ? "failed" : "ok");
    li.appendChild(el("strong", e.step));
    li.appendChild(document.createTextNode(` ${e.outcome} `));
    li.appendChild(el("span", `${when(e.time)} (${e.source})`, "when"));
    if (e.reason) li.appendChild(el("span", e.reason, "reason"));
    list.appendChild(li);
  }
  if (!events.length) list.appendChild(el("li", "nothing reported yet"));
}

function confirmAction(text) {
  return new Promise((resolve) => {
    const dialog = $("confirm");
    $("confirm-text").textContent = text;
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

async function openClaim() {
  const select = $("claim-site");
  select.replaceChildren();
  try {
    const orgs = await api("GET", "/v1/admin/organizations");
    for (const o of orgs.organizations) {
      const sites = await api("GET", `/v1/admin/organizations/${encodeURIComponent(o.name)}/sites`);
      for (const s of sites.sites) {
        const opt = el("option", `${o.name}/${s.name}`);
        opt.value = JSON.stringify([o.name, s.name]);
        select.appendChild(opt);
      }
    }
  } catch (e) {
    say("Cannot list sites: " + e.message);
    return;
  }
  $("claim-form").hidden = false;
  select.focus();
}

async function claim(ev) {
  ev.preventDefault();
  const serial = $("device-page").dataset.serial;
  const [org, site] = JSON.parse($("claim-site").value);
  if (!(await confirmAction(`Claim ${serial} to ${org}/${site}?`))) return;
  try {
    await api("POST", "/v1/admin/claims", { serial, organization: org, site });
    $("claim-form").hidden = true;
    say(`${serial} claimed to ${org}/${site}.`);
    loadDevice(serial);
  } catch (e) { say("Claim refused: " + e.message); }
}

async function setAssetId(ev) {
  ev.preventDefault();
  const serial = $("device-page").dataset.serial;
  const value = $("asset-id").value.trim();
  const text = value ? `Set the asset ID of ${serial} to ${value}?`
    : `Set the asset ID of ${serial} back to its serial?`;
  if (!(await confirmAction(text))) return;
  try {
    await api("PUT", "/v1/admin/devices/" + encodeURIComponent(serial),
      { asset_id: value || null });
    $("asset-form").hidden = true;
    say(`The asset ID of ${serial} is now ${value || serial}.`);
    loadDevice(serial);
  } catch (e) { say("Asset ID refused: " + e.message); }
}

async function unclaim() {
  const serial = $("device-page").dataset.serial;
  if (!(await confirmAction(`Unclaim ${serial}? It will no longer be sent to this cloud.`)))
    return;
  try {
    await api("DELETE", "/v1/admin/claims/" + encodeURIComponent(serial));
    say(`${serial} unclaimed.`);
    loadDevice(serial);
  } catch (e) { say("Unclaim refused: " + e.message); }
}

// ---- sites ----------------------------------------------------------------

async function loadSites() {
  try {
    const orgs = await api("GET", "/v1/admin/organizations");
    const body = $("sites").tBodies[0];
    const rows = [];
    for (const o of orgs.organizations) {
      const sites = await api("GET", `/v1/admin/organizations/${encodeURIComponent(o.name)}/sites`);
      for (const s of sites.sites) {
        const secret = s.psk_set ? "set" + (s.psk_updated ? ` ${when(s.psk_updated)}` : "")
          : "not set";
        rows.push(row([`${o.name}/${s.name}`,
          s.conductor_addresses && s.conductor_addresses.length
            ? `${s.conductor_addresses.join(", ")} port ${s.conductor_port}` : null,
          el("span", secret, "badge " + (s.psk_set ? "ok" : "warn")),
          s.conductor_ca_pem ? "set" : "not set", s.devices,
          el("span", s.ready ? "ready" : "incomplete", "badge " + (s.ready ? "ok" : "warn"))]));
      }
    }
    body.replaceChildren(...rows);
    if (!rows.length) body.appendChild(row(["no site yet", "", "", "", "", ""]));
    say("Updated " + new Date().toLocaleTimeString());
  } catch (e) {
    if (state.who) say("Cannot read the sites: " + e.message);
  }
}

// ---- audit ----------------------------------------------------------------

async function loadAudit() {
  try {
    const [doc, verdict] = await Promise.all([api("GET", "/v1/admin/audit"),
      api("GET", "/v1/admin/audit?verify=1")]);
    $("audit-verdict").textContent = verdict.verified
      ? `The chain of ${verdict.entries} entries verifies.`
      : `The chain is broken at entry ${verdict.broken_at}: an entry was changed or removed.`;
    const body = $("audit").tBodies[0];
    const rows = doc.entries.slice().reverse().map((e) => row([when(e.time),
      e.actor === "-" ? "(no valid token)" : e.actor, e.peer, `${e.action} ${e.object}`,
      el("span", `${e.status} ${e.result}`, "badge " + (e.status < 400 ? "ok" : "bad"))],
      e.status < 400 ? "" : "attention"));
    body.replaceChildren(...rows);
    if (!rows.length) body.appendChild(row(["nothing recorded yet", "", "", "", ""]));
    say("Updated " + new Date().toLocaleTimeString());
  } catch (e) {
    if (state.who) say("Cannot read the audit: " + e.message);
  }
}

// ---- navigation -----------------------------------------------------------

function route() {
  if (!state.who) return;
  stopRefresh();
  $("claim-form").hidden = true;
  $("asset-form").hidden = true;
  const hash = location.hash || "#/fleet";
  let load;
  if (hash.startsWith("#/device/")) {
    const serial = decodeURIComponent(hash.slice(9));
    showOnly("device-page");
    load = () => loadDevice(serial);
  } else if (hash === "#/sites") {
    showOnly("sites-page");
    load = loadSites;
  } else if (hash === "#/audit") {
    showOnly("audit-page");
    load = loadAudit;
  } else {
    showOnly("fleet-page");
    load = loadFleet;
  }
  load();
  state.timer = setInterval(load, REFRESH_MS);
}

function loggedIn(doc) {
  state.csrf = doc.csrf;
  state.who = doc.name;
  $("who").textContent = "logged in as " + doc.name;
  $("nav").hidden = false;
  route();
}

async function login(ev) {
  ev.preventDefault();
  const field = $("token");
  const token = field.value.trim();
  field.value = ""; // the token leaves the page at once
  $("login-error").textContent = "";
  try {
    loggedIn(await api("POST", "/ui/api/login", { token }));
  } catch (e) {
    $("login-error").textContent = "Login refused: " + e.message;
    field.focus();
  }
}

async function logout() {
  try { await api("POST", "/ui/api/logout"); } catch (e) { /* gone either way */ }
  showLogin("Logged out.");
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("filter").addEventListener("submit", (ev) => ev.preventDefault());
  for (const id of ["f-site", "f-stage"]) $(id).addEventListener("change", renderDevices);
  $("f-serial").addEventListener("input", renderDevices);
  $("act-claim").addEventListener("click", openClaim);
  $("act-unclaim").addEventListener("click", unclaim);
  $("claim-form").addEventListener("submit", claim);
  $("claim-cancel").addEventListener("click", () => { $("claim-form").hidden = true; });
  $("act-asset").addEventListener("click", () => {
    $("asset-form").hidden = false;
    $("asset-id").value = "";
    $("asset-id").focus();
  });
  $("asset-form").addEventListener("submit", setAssetId);
  $("asset-cancel").addEventListener("click", () => { $("asset-form").hidden = true; });
  window.addEventListener("hashchange", route);
  try {
    loggedIn(await api("GET", "/ui/api/session"));
  } catch (e) {
    showLogin("");
  }
});
