// 五为 chat simulator — three chat panes (resident / volunteer group / coordinator).
// Plain JS, no build step. Bot text is always inserted with textContent (never innerHTML).
"use strict";

const POLL_MS = 1500;
const NEW_RESIDENT = "__new__";
const LS = "wuwei.sim.";   // localStorage key prefix

let directory = { people: [], groups: [] };

// ---------- small helpers ----------

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function store(key, value) {
  try { if (value === undefined) return localStorage.getItem(LS + key); localStorage.setItem(LS + key, value); }
  catch (e) { return null; }   // private mode etc.
}

function toast(box, text, isError) {
  const t = el("div", "toast" + (isError ? " error" : ""), text);
  (box || document.getElementById("global-toasts")).appendChild(t);
  setTimeout(() => t.classList.add("fade"), 2500);
  setTimeout(() => t.remove(), 3000);
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let resp;
  try { resp = await fetch(path, opts); }
  catch (e) { throw new ApiError(0, "无法连接服务器 (network error)"); }
  let data = null;
  try { data = await resp.json(); } catch (e) { /* empty or non-JSON body */ }
  if (!resp.ok) {
    const msg = data && data.error ? data.error : "请求失败 HTTP " + resp.status;
    throw new ApiError(resp.status, msg);
  }
  return data;
}

function personName(userId) {
  const p = directory.people.find((x) => x.user_id === userId);
  if (p) return p.name;
  if (userId === residentId()) return document.querySelector("#pane-resident .inp-name").value.trim() || "新居民";
  return userId;
}

function fillSelect(select, options, wanted) {
  select.replaceChildren(...options.map(([value, label]) => {
    const o = el("option", null, label);
    o.value = value;
    return o;
  }));
  if (options.some(([v]) => v === wanted)) select.value = wanted;
}

// ---------- the three panes ----------

function residentId() {
  let id = store("residentId");
  if (!id) {
    const hex = Array.from(crypto.getRandomValues(new Uint8Array(3)), (b) => b.toString(16).padStart(2, "0")).join("");
    id = "r-" + hex;
    store("residentId", id);
  }
  return id;
}

function makePane(id, opts) {
  const root = document.getElementById(id);
  const pane = {
    root,
    key: id,
    userSel: root.querySelector(".sel-user"),
    list: root.querySelector(".messages"),
    toasts: root.querySelector(".toasts"),
    lastJson: null,      // last rendered messages (JSON) + chat id, to skip needless re-renders
    lastCount: 0,
    busy: false,         // a poll is in flight
    again: false,        // something changed while busy: poll again afterwards
    pollFailed: false,   // show a poll error once, not every 1.5 s
    ...opts,
  };
  pane.userId = () => pane.userSel.value;
  pane.userName = () => personName(pane.userId());
  root.querySelector(".composer").addEventListener("submit", (ev) => { ev.preventDefault(); sendFrom(pane); });
  pane.userSel.addEventListener("change", () => { store(id + ".user", pane.userSel.value); pane.onUserChange && pane.onUserChange(); refreshPane(pane); });
  return pane;
}

const residentPane = makePane("pane-resident", {
  chatId: () => residentPane.userId(),
  onUserChange() {
    const isNew = residentPane.userSel.value === residentId();
    const name = residentPane.root.querySelector(".inp-name");
    name.disabled = !isNew;
    if (!isNew) name.value = personName(residentPane.userId());
    else name.value = store("residentName") || "新居民";
  },
});
residentPane.root.querySelector(".inp-name").addEventListener("input", (ev) => store("residentName", ev.target.value));

const groupPane = makePane("pane-group", {
  groupSel: document.querySelector("#pane-group .sel-group"),
  chatId: () => groupPane.groupSel.value,
});
groupPane.groupSel.addEventListener("change", () => {
  store("pane-group.group", groupPane.groupSel.value);
  fillGroupSpeakers(true);
  refreshPane(groupPane);
});

const coordPane = makePane("pane-coord", { chatId: () => coordPane.userId() });

const panes = [residentPane, groupPane, coordPane];

function fillGroupSpeakers(resetToMember) {
  const group = directory.groups.find((g) => g.chat_id === groupPane.groupSel.value);
  const teamId = group ? group.team_id : null;
  const inTeam = (p) => (p.teams || []).includes(teamId);
  const members = directory.people.filter(inTeam);
  const others = directory.people.filter((p) => !inTeam(p));
  const opts = members.map((p) => [p.user_id, p.name + "（本队）"]).concat(others.map((p) => [p.user_id, p.name]));
  const wanted = resetToMember ? (members[0] || {}).user_id : store("pane-group.user") || (members[0] || {}).user_id;
  fillSelect(groupPane.userSel, opts, wanted);
  store("pane-group.user", groupPane.userSel.value);
}

function fillSelectors() {
  const people = directory.people;
  const ROLE_CN = { coordinator: "专管员", volunteer: "志愿者", leader: "队长", resident: "居民" };
  const roleLabel = (p) => (p.roles && p.roles.length ? "（" + p.roles.map((r) => ROLE_CN[r] || r).join("/") + "）" : "");

  const rid = residentId();
  fillSelect(residentPane.userSel,
    [[rid, "新居民 " + rid]].concat(people.map((p) => [p.user_id, p.name + roleLabel(p)])),
    store("pane-resident.user") || rid);
  residentPane.onUserChange();

  fillSelect(groupPane.groupSel, directory.groups.map((g) => [g.chat_id, g.team_name || g.chat_id]),
    store("pane-group.group"));
  fillGroupSpeakers(false);

  const isCoord = (p) => (p.roles || []).includes("coordinator");
  const ordered = people.filter(isCoord).concat(people.filter((p) => !isCoord(p)));
  fillSelect(coordPane.userSel, ordered.map((p) => [p.user_id, p.name + roleLabel(p)]),
    store("pane-coord.user") || (ordered[0] || {}).user_id);
}

// ---------- rendering ----------

function renderMessages(pane, messages) {
  const me = pane.userId();
  const isGroup = pane === groupPane;
  const list = pane.list;
  const nodes = messages.map((m) => {
    const sender = m.sender || "bot";
    const side = sender === "bot" ? "bot" : sender === me ? "me" : "other";
    const row = el("div", "msg " + side);
    if (isGroup && sender !== "bot") row.appendChild(el("div", "sender", personName(sender)));
    const bubble = el("div", "bubble");
    bubble.appendChild(el("div", "text", m.text || ""));
    if (m.document) {                                                         // a file the bot sent
      const link = el("a", "document", "📎 " + m.document.filename);
      link.href = m.document.url;
      link.download = m.document.filename;
      bubble.appendChild(link);
    }
    if (m.edited) bubble.appendChild(el("span", "edited", "已编辑"));
    row.appendChild(bubble);
    for (const btnRow of m.buttons || []) {
      const rowEl = el("div", "btn-row");
      for (const b of btnRow) {
        const btn = el("button", "inline-btn", b.text);
        btn.type = "button";
        btn.addEventListener("click", () => pressButton(pane, m.message_id, b.data, btn));
        rowEl.appendChild(btn);
      }
      row.appendChild(rowEl);
    }
    return row;
  });
  if (!nodes.length) nodes.push(el("div", "empty", "暂无消息"));
  const scrollTop = list.scrollTop;
  list.replaceChildren(...nodes);
  if (messages.length > pane.lastCount) list.scrollTop = list.scrollHeight;   // new messages: jump to bottom
  else list.scrollTop = scrollTop;                                           // edits only: keep position
  pane.lastCount = messages.length;
}

async function refreshPane(pane) {
  const chatId = pane.chatId();
  if (!chatId) return;
  if (pane.busy) { pane.again = true; return; }   // re-poll once the in-flight request ends
  pane.busy = true;
  try {
    let messages;
    try { messages = await api("GET", "/sim/api/chats/" + encodeURIComponent(chatId) + "/messages"); }
    catch (e) { if (e.status === 404) messages = []; else throw e; }   // chat has no history yet
    if (chatId !== pane.chatId()) return;                               // selection changed meanwhile
    const json = chatId + "|" + pane.userId() + "|" + JSON.stringify(messages || []);
    if (json !== pane.lastJson) {
      if (!pane.lastJson || !pane.lastJson.startsWith(chatId + "|")) pane.lastCount = 0;  // new chat
      pane.lastJson = json;
      renderMessages(pane, messages || []);
    }
    pane.pollFailed = false;
  } catch (e) {
    if (!pane.pollFailed) toast(pane.toasts, e.message, true);
    pane.pollFailed = true;
  } finally {
    pane.busy = false;
    if (pane.again) { pane.again = false; refreshPane(pane); }
  }
}

async function refreshClock() {
  try {
    const data = await api("GET", "/sim/api/clock");
    showClock(data && (data.local || data.now));
  } catch (e) { /* the panes already report connection problems */ }
}

function showClock(now) {
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)/.exec(now || "");
  document.getElementById("clock-now").textContent = m ? m[1] + " " + m[2] : now || "—";
}

function refreshAll() {
  refreshClock();
  return Promise.all(panes.map(refreshPane));
}

// ---------- actions ----------

async function sendFrom(pane) {
  const input = pane.root.querySelector(".inp-text");
  const text = input.value.trim();
  const chatId = pane.chatId();
  if (!text || !chatId) return;
  input.disabled = true;
  try {
    await api("POST", "/sim/api/send", { chat_id: chatId, user_id: pane.userId(), user_name: pane.userName(), text });
    input.value = "";
  } catch (e) {
    toast(pane.toasts, e.message, true);
  } finally {
    input.disabled = false;
    input.focus();
  }
  await refreshAll();
}

async function pressButton(pane, messageId, data, btn) {
  btn.disabled = true;
  try {
    const res = await api("POST", "/sim/api/press",
      { chat_id: pane.chatId(), user_id: pane.userId(), message_id: messageId, data });
    if (res && res.answer) toast(pane.toasts, res.answer, false);
  } catch (e) {
    toast(pane.toasts, e.message, true);
  } finally {
    btn.disabled = false;
  }
  await refreshAll();
}

async function advanceClock(minutes) {
  try {
    const data = await api("POST", "/sim/api/clock", { advance_minutes: minutes });
    showClock(data && (data.local || data.now));
    toast(null, "已快进 " + (minutes >= 60 ? minutes / 60 + " 小时" : minutes + " 分钟"), false);
  } catch (e) {
    toast(null, e.message, true);
  }
  await refreshAll();
}

document.querySelectorAll("[data-advance]").forEach((b) =>
  b.addEventListener("click", () => advanceClock(Number(b.dataset.advance))));

// ---------- start-up ----------

async function start() {
  try {
    directory = await api("GET", "/sim/api/directory");
    directory.people = directory.people || [];
    directory.groups = directory.groups || [];
  } catch (e) {
    toast(null, "读取通讯录失败：" + e.message + "（3 秒后重试）", true);
    setTimeout(start, 3000);
    return;
  }
  fillSelectors();
  await refreshAll();
  setInterval(refreshAll, POLL_MS);
}

start();
