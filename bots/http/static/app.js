// IGNY8 web chat: sign in, pick a site and sector, talk to the agent over SSE (fetch + ReadableStream,
// because EventSource cannot POST or send an Authorization header). No build step, no dependencies.
"use strict";

const STORE = { auth: "igny8.auth", conversation: "igny8.conversation", site: "igny8.site", sector: "igny8.sector" };
const $ = (id) => document.getElementById(id);

const state = {
  auth: readJson(STORE.auth), // {kind: "key" | "token", value}
  conversation: localStorage.getItem(STORE.conversation),
  bubble: null, // the assistant bubble tokens are streaming into
  jobs: new Map(), // job_id -> {row, bar, count, label}
};

// --- helpers -------------------------------------------------------------------------------------------

function readJson(key) {
  try { return JSON.parse(localStorage.getItem(key) || "null"); } catch { return null; }
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

class AuthError extends Error {}

async function api(path, { method = "GET", body } = {}, retried = false) {
  const headers = { Accept: "application/json" };
  if (state.auth) headers.Authorization = `Bearer ${state.auth.value}`;
  const form = body instanceof FormData; // the browser sets the multipart boundary itself
  if (body !== undefined && !form) headers["Content-Type"] = "application/json";
  const payload = body === undefined || form ? body : JSON.stringify(body);
  const response = await fetch(path, { method, headers, body: payload });
  if (response.status === 401) {
    // Access tokens live 15 minutes: trade the refresh token for a new pair once, then retry.
    if (!retried && state.auth && state.auth.refresh && (await refreshToken())) return api(path, { method, body }, true);
    throw new AuthError("That key or session was not accepted (wrong, revoked or expired).");
  }
  return response;
}

let refreshing = null; // one refresh at a time, however many requests hit the expiry together

function refreshToken() {
  refreshing = refreshing || (async () => {
    try {
      const response = await fetch("/api/v1/auth/token/refresh/", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ refresh: state.auth.refresh }),
      });
      if (!response.ok) return false;
      const pair = (await response.json()).data || {};
      if (!pair.access) return false;
      saveAuth({ kind: "token", value: pair.access, refresh: pair.refresh || state.auth.refresh });
      return true;
    } catch {
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function saveAuth(auth) {
  state.auth = auth;
  localStorage.setItem(STORE.auth, JSON.stringify(auth));
}

async function envelope(response) {
  const payload = await response.json().catch(() => null);
  if (!response.ok || (payload && payload.success === false)) {
    const error = payload && payload.error;
    const detail = error && error.details && error.details.map ? error.details.map((d) => `${d.field}: ${d.message}`).join("; ") : "";
    throw new Error((error && error.message) || detail || `HTTP ${response.status}`);
  }
  return payload && "data" in payload ? payload.data : payload;
}

// --- markdown: just tables, lists, **bold** and `code` — what the agent's replies use -------------------

function inline(text) {
  const fragment = document.createDocumentFragment();
  for (const part of text.split(/(\*\*[^*]+\*\*|`[^`]+`)/)) {
    if (!part) continue;
    if (part.startsWith("**") && part.endsWith("**") && part.length > 4) fragment.append(el("strong", { text: part.slice(2, -2) }));
    else if (part.startsWith("`") && part.endsWith("`") && part.length > 2) fragment.append(el("code", { text: part.slice(1, -1) }));
    else fragment.append(document.createTextNode(part));
  }
  return fragment;
}

function cells(line) {
  return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => c.trim());
}

function renderMarkdown(text) {
  const root = document.createDocumentFragment();
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  for (let i = 0; i < lines.length; ) {
    const line = lines[i];
    if (line.trim().startsWith("|")) {
      const rows = [];
      while (i < lines.length && lines[i].trim().startsWith("|")) rows.push(lines[i++]);
      const table = el("table");
      const body = el("tbody");
      rows.forEach((row, n) => {
        if (/^\s*\|?[\s:|-]+\|?\s*$/.test(row) && row.includes("-")) return; // |---|---| separator
        const header = n === 0 && rows.length > 1 && /^\s*\|?[\s:|-]+\|?\s*$/.test(rows[1]);
        const tr = el("tr");
        for (const cell of cells(row)) tr.append(el(header ? "th" : "td", {}, inline(cell)));
        (header ? table.appendChild(el("thead")) : body).append(tr);
      });
      table.append(body);
      root.append(table);
    } else if (/^\s*[-*] /.test(line)) {
      const list = el("ul");
      while (i < lines.length && /^\s*[-*] /.test(lines[i])) list.append(el("li", {}, inline(lines[i++].replace(/^\s*[-*] /, ""))));
      root.append(list);
    } else if (line.trim()) {
      const p = el("p", {}, inline(line));
      i++;
      while (i < lines.length && lines[i].trim() && !/^\s*(\||[-*] )/.test(lines[i])) p.append(el("br"), inline(lines[i++]));
      root.append(p);
    } else {
      i++;
    }
  }
  return root;
}

// --- transcript ----------------------------------------------------------------------------------------

function scrollDown() {
  window.scrollTo(0, document.body.scrollHeight);
}

function add(node) {
  $("transcript").append(node);
  scrollDown();
  return node;
}

function userBubble(text) {
  return add(el("div", { class: "msg user", text }));
}

function assistantBubble(text) {
  const node = add(el("div", { class: "msg assistant" }));
  node.append(renderMarkdown(text));
  return node;
}

function note(text, kind = "") {
  return add(el("div", { class: `note ${kind}`.trim(), text }));
}

const handlers = {
  start(data) {
    state.conversation = data.conversation_id;
    localStorage.setItem(STORE.conversation, data.conversation_id);
  },
  token(data) {
    if (!state.bubble) {
      state.bubble = add(el("div", { class: "msg assistant streaming" }));
      state.bubble.dataset.raw = "";
    }
    state.bubble.dataset.raw += data.text;
    state.bubble.textContent = state.bubble.dataset.raw;
    scrollDown();
  },
  message(data) {
    if (state.bubble) {
      state.bubble.classList.remove("streaming");
      state.bubble.replaceChildren(renderMarkdown(data.text));
      state.bubble = null;
    } else {
      assistantBubble(data.text);
    }
  },
  tool_call(data) {
    note(`→ ${data.action} ${JSON.stringify(data.arguments || {})}`);
  },
  tool_result(data) {
    if (/"rejected":\s*true/.test(data.content || "")) note(`${data.action} not run: you said no`, "skipped");
    else note(data.ok ? `${data.action} finished` : `${data.action} failed`, data.ok ? "ok" : "failed");
  },
  confirm(data) {
    state.bubble = null;
    confirmCard(data);
  },
  job(data) {
    const job = jobRow(data);
    job.row.classList.toggle("done", data.status === "done");
    job.row.classList.toggle("failed", data.status === "failed");
    if (data.status === "done") {
      job.bar.max = job.bar.max || 1;
      job.bar.value = job.bar.max;
      job.label.textContent = `${data.action}: done`;
    } else if (data.status === "failed") {
      job.label.textContent = `${data.action} failed: ${data.message || ""}`;
    }
  },
  progress(data) {
    const job = jobRow(data);
    if (data.total) {
      job.bar.max = data.total;
      job.bar.value = data.done;
      job.count.textContent = `${data.done}/${data.total}`;
    }
    job.label.textContent = `${data.action}: ${data.phase || ""}`;
  },
  queued(data) {
    note(data.message || "Queued.");
  },
  error(data) {
    note(data.message || "Something went wrong.", "error");
  },
  done() {
    state.bubble = null;
  },
};

function jobRow(data) {
  let job = state.jobs.get(data.job_id);
  if (!job) {
    const bar = el("progress"); // no value: indeterminate until the first progress event
    const label = el("span", { class: "label", text: `${data.action}: starting` });
    const count = el("span", { class: "count" });
    job = { row: add(el("div", { class: "job" }, label, bar, count)), bar, label, count };
    job.row.dataset.jobId = data.job_id;
    state.jobs.set(data.job_id, job);
  }
  return job;
}

function confirmCard(ask) {
  const args = JSON.stringify(ask.arguments || {});
  const editor = el("textarea", { rows: "4", hidden: "" });
  editor.value = JSON.stringify(ask.arguments || {}, null, 2);
  const outcome = el("div", { class: "outcome" });
  const buttons = [];
  const decide = async (decision) => {
    let body = { decision };
    if (decision === "approve" && !editor.hidden) {
      let edited;
      try { edited = JSON.parse(editor.value); } catch {
        outcome.textContent = "The arguments are not valid JSON.";
        return;
      }
      if (JSON.stringify(edited) !== args) body = { decision: "edit", arguments: edited };
    }
    buttons.forEach((b) => { b.disabled = true; });
    editor.disabled = true;
    outcome.textContent = { approve: "Approved", edit: "Approved with changes", reject: "Rejected" }[body.decision];
    card.dataset.decision = body.decision;
    await runTurn(`/api/v1/chat/${encodeURIComponent(state.conversation)}/resume`, { ...body, ...context() });
  };
  const approve = el("button", { type: "button", "data-decision": "approve", text: "Approve", onclick: () => decide("approve") });
  const edit = el("button", {
    type: "button", class: "ghost", "data-decision": "edit", text: "Edit arguments",
    onclick: () => { editor.hidden = false; edit.disabled = true; approve.textContent = "Approve with changes"; },
  });
  const reject = el("button", { type: "button", class: "reject", "data-decision": "reject", text: "Reject", onclick: () => decide("reject") });
  buttons.push(approve, edit, reject);
  const credits = ask.estimated_credits ? ` · about ${ask.estimated_credits} credits` : "";
  const card = add(el("div", { class: "confirm" },
    el("h3", { text: `${ask.reminder ? "Still waiting for your OK" : "Needs your OK"}: ${ask.action}` }),
    el("div", { text: `${ask.summary || ""}${credits}` }),
    el("pre", { text: args }),
    editor,
    el("div", { class: "actions" }, approve, edit, reject),
    outcome,
  ));
  return card;
}

// --- SSE over fetch ------------------------------------------------------------------------------------

function dispatch(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue; // keep-alive comment
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return;
  let payload;
  try { payload = JSON.parse(data.join("\n")); } catch { payload = { text: data.join("\n") }; }
  (handlers[event] || (() => {}))(payload);
}

async function runTurn(path, body) {
  setBusy(true);
  try {
    const response = await api(path, { method: "POST", body });
    if (!response.ok) {
      await envelope(response); // throws with the server's message
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
    if (buffer.trim()) dispatch(buffer);
  } catch (error) {
    if (error instanceof AuthError) return signOut(error.message);
    note(error.message || String(error), "error");
  } finally {
    state.bubble = null;
    setBusy(false);
  }
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("send").textContent = busy ? "…" : "Send";
  document.body.dataset.busy = busy ? "1" : "";
}

function context() {
  const site = Number($("site").value) || null;
  const sector = Number($("sector").value) || null;
  return { site_id: site, sector_id: sector };
}

// --- sign in, sites and sectors ---------------------------------------------------------------------------

function fillSelect(select, items, selected) {
  select.replaceChildren(el("option", { value: "", text: "—" }));
  for (const item of items) select.append(el("option", { value: String(item.id), text: item.name }));
  if (items.some((i) => String(i.id) === String(selected))) select.value = String(selected);
  else if (items.length) select.value = String(items[0].id);
}

async function loadSites() {
  const page = await envelope(await api("/api/v1/auth/sites/?page_size=100"));
  fillSelect($("site"), page.results || [], localStorage.getItem(STORE.site));
  localStorage.setItem(STORE.site, $("site").value);
  await loadSectors();
}

let sectorsRequest = 0;

async function loadSectors() {
  // Answers can arrive out of order when the site changes quickly: only the latest request may fill
  // the list, else a sector of another site would be sent with this one.
  const request = ++sectorsRequest;
  const site = $("site").value;
  $("sector").disabled = true;
  let sectors = [];
  if (site) {
    const page = await envelope(await api(`/api/v1/auth/sectors/?site_id=${encodeURIComponent(site)}&page_size=100`));
    sectors = page.results || [];
  }
  if (request !== sectorsRequest) return;
  fillSelect($("sector"), sectors, localStorage.getItem(`${STORE.sector}.${site}`));
  $("sector").dataset.site = site;
  $("sector").disabled = false;
  localStorage.setItem(`${STORE.sector}.${site}`, $("sector").value);
}

async function loadHistory() {
  $("transcript").replaceChildren();
  state.jobs.clear();
  if (!state.conversation) return;
  const data = await envelope(await api(`/api/v1/chat/${encodeURIComponent(state.conversation)}`));
  for (const m of data.messages || []) {
    if (m.role === "user") userBubble(m.content);
    else if (m.role === "assistant" && m.content) assistantBubble(m.content);
    for (const call of m.tool_calls || []) note(`→ ${call.action} ${JSON.stringify(call.arguments || {})}`);
  }
}

async function enter() {
  try {
    const me = await api("/api/v1/auth/accounts/me/");
    if (me.ok) {
      const who = await envelope(me);
      $("who").textContent = `${who.account_name || ""} · ${who.role || ""}`;
    }
    await loadSites();
    await loadHistory().catch(() => {});
  } catch (error) {
    if (error instanceof AuthError) return signOut(error.message);
    $("login-error").textContent = error.message;
    return;
  }
  $("login").hidden = true;
  $("chat").hidden = false;
  $("context").hidden = false;
  document.body.dataset.ready = "1";
  $("message").focus();
}

function signOut(reason = "") {
  state.auth = null;
  state.conversation = null;
  localStorage.removeItem(STORE.auth);
  localStorage.removeItem(STORE.conversation);
  $("chat").hidden = true;
  $("context").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = reason;
  document.body.dataset.ready = "";
}

async function signInWithKey(event) {
  event.preventDefault();
  saveAuth({ kind: "key", value: $("api-key").value.trim() });
  await enter();
}

async function signInWithPassword(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  state.auth = null;
  try {
    const response = await api("/api/v1/auth/token/", {
      method: "POST",
      body: { email: $("email").value.trim(), password: $("password").value },
    }).catch((e) => { throw e instanceof AuthError ? new Error("Wrong email or password.") : e; });
    const data = await envelope(response);
    const token = data && (data.access || data.access_token || data.token);
    if (!token) throw new Error("The server did not return an access token.");
    saveAuth({ kind: "token", value: token, refresh: data.refresh || data.refresh_token || null });
    await enter();
  } catch (error) {
    $("login-error").textContent = error.message;
  }
}

function send(event) {
  event.preventDefault();
  const file = $("file").files[0];
  const text = $("message").value.trim() || (file ? "import these keywords" : "");
  if (!text || $("send").disabled) return;
  $("message").value = "";
  userBubble(file ? `${text}\n📎 ${file.name}` : text);
  const fields = { message: text, ...context() };
  if (state.conversation) fields.conversation_id = state.conversation;
  let body = fields;
  if (file) {
    body = new FormData();
    for (const [name, value] of Object.entries(fields)) if (value !== null) body.append(name, String(value));
    body.append("file", file, file.name);
    detach();
  }
  runTurn("/api/v1/chat", body);
}

function showAttachment() {
  const file = $("file").files[0];
  $("attached").hidden = !file;
  $("attached-name").textContent = file ? `📎 ${file.name} (${Math.ceil(file.size / 1024)} KB)` : "";
}

function detach() {
  $("file").value = "";
  showAttachment();
}

function newChat() {
  state.conversation = null;
  localStorage.removeItem(STORE.conversation);
  $("transcript").replaceChildren();
  state.jobs.clear();
  $("message").focus();
}

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", signInWithKey);
  $("password-form").addEventListener("submit", signInWithPassword);
  $("composer").addEventListener("submit", send);
  $("file").addEventListener("change", showAttachment);
  $("detach").addEventListener("click", detach);
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) send(e);
  });
  $("site").addEventListener("change", () => {
    localStorage.setItem(STORE.site, $("site").value);
    loadSectors().catch((e) => note(e.message, "error"));
  });
  $("sector").addEventListener("change", () => localStorage.setItem(`${STORE.sector}.${$("site").value}`, $("sector").value));
  $("new-chat").addEventListener("click", newChat);
  $("sign-out").addEventListener("click", () => signOut());
  if (state.auth) enter();
  else signOut();
});
