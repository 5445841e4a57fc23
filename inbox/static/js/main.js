// The agents' inbox: login, the shell, the sidebar and list, live events and keyboard.

import { renderAdmin } from "./admin.js";
import { renderReports } from "./reports.js";
import * as api from "./api.js";
import { renderCustomer } from "./customer.js";
import { avatar, h, icon, replace, toast } from "./dom.js";
import { channelName, channelType, fullTime, locale, num, setLocale, shortTime, t } from "./i18n.js";
import { Live, beep, desktopNotify } from "./live.js";
import { slaBadge, slaNotificationText, slaNotificationTitle } from "./sla.js";
import { agentName, emit, isAdmin, on, state } from "./state.js";
import {
  assignToMe, focusComposer, loadConversation, renderCollision, renderEmptyThread, renderThread, setStatus,
} from "./thread.js";

const CUSTOMER_TYPING_MS = 6000; // a typing signal counts this long unless renewed

const root = document.getElementById("app");
const VIEWS = [
  ["mine", "view_mine", "user"],
  ["unassigned", "view_unassigned", "tray"],
  ["teams", "view_teams", "users"],
  ["all", "view_all", "inbox"],
];
const STATUSES = ["open", "pending", "snoozed", "resolved", "bot"];
let live = null;
let ui = {};

// ---------------------------------------------------------------- boot and login

async function boot() {
  setLocale(localStorage.getItem("pishkhan.locale") || "fa");
  try {
    state.me = await api.get("/me");
  } catch {
    return renderLogin();
  }
  await start();
}

function renderLogin(message = "") {
  document.title = t("app");
  const error = h("p.login-error", { role: "alert" }, message);
  const email = h("input.input", { type: "email", name: "email", autocomplete: "username", required: true, dir: "ltr", id: "login-email" });
  const password = h("input.input", { type: "password", name: "password", autocomplete: "current-password", required: true, dir: "ltr", id: "login-password" });
  const form = h("form.login-card", {},
    h("div.brand.big", {}, h("span.logo", {}, "پ"), h("div", {}, h("strong", {}, t("app")), h("small", {}, t("login_sub")))),
    h("h1", {}, t("login_title")),
    h("label", { for: "login-email" }, t("email")), email,
    h("label", { for: "login-password" }, t("password")), password,
    error,
    h("button.btn.primary.block", { type: "submit" }, t("login")),
    h("button.link.lang-link", { type: "button", onclick: () => { setLocale(locale() === "fa" ? "en" : "fa"); localStorage.setItem("pishkhan.locale", locale()); renderLogin(); } }, icon("globe", 14), t("language")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      await api.post("/auth/login", { email: email.value, password: password.value });
      state.me = await api.get("/me");
      await start();
    } catch (e) {
      error.textContent = e.status === 429 ? t("too_many") : t("login_failed");
    }
  });
  replace(root, h("div.login-page", {}, form));
  email.focus();
}

async function start() {
  api.setCsrf(state.me.csrf_token);
  const stored = localStorage.getItem("pishkhan.locale");
  setLocale(state.me.locale || stored || "fa");
  const [agents, teams, labels, canned] = await Promise.all([
    api.optional("/agents", { agents: [] }),
    api.optional("/teams", { teams: [] }),
    api.optional("/labels", { labels: [] }),
    api.optional("/canned-responses", { canned_responses: [] }),
  ]);
  state.agents = agents.agents || [];
  state.teams = (teams.teams || []).map((team) => ({ ...team }));
  state.labels = labels.labels || [];
  state.canned = canned.canned_responses || [];
  const mine = state.agents.find((a) => a.id === state.me.id);
  if (!state.me.presence) state.me.presence = mine?.presence || "offline";
  if (!state.me.team_ids) state.me.team_ids = [];
  live = new Live({
    onEvent: handleEvent,
    onSignal: (signal) => {
      state.collision.set(signal.conversation_id, signal);
      if (signal.conversation_id === state.currentId) renderCollision();
    },
    onCustomerTyping: (conversationId) => {
      state.customerTyping.set(conversationId, Date.now() + CUSTOMER_TYPING_MS);
      if (conversationId !== state.currentId) return;
      renderCollision();
      setTimeout(() => { if (conversationId === state.currentId) renderCollision(); }, CUSTOMER_TYPING_MS + 50);
    },
    onState: (connected) => {
      document.body.classList.toggle("offline", !connected);
      if (connected) {
        refreshList();
        if (state.currentId) refreshThread();
      }
    },
    onLoggedOut: () => { live.stop(); renderLogin(); },
  });
  live.start();
  renderShell();
  loadNotifications();
}

// ---------------------------------------------------------------- the shell

function renderShell() {
  ui = {
    sidebar: h("aside.sidebar", { "aria-label": t("views") }),
    list: h("section.list-pane"),
    thread: h("main.thread-pane"),
    customer: h("aside.customer-pane", { "aria-label": t("customer_panel") }),
    admin: h("div.admin-root"),
    notes: h("div.notif-panel", { hidden: true }),
    banner: h("div.conn-banner", {}, t("reconnecting")),
  };
  if (state.page === "reports") { // the reports page: whole width, like admin
    replace(root, h("div.app", {}, topbar(), ui.banner, h("div.layout.admin-layout", {}, h("div.reports-root", {}, ui.admin)), ui.notes));
    renderReports(ui.admin);
    return;
  }
  const layout = state.page === "admin"
    ? h("div.layout.admin-layout", {}, ui.admin)
    : h("div.layout", {}, ui.sidebar, ui.list, ui.thread, ui.customer);
  replace(root, h("div.app", {}, topbar(), ui.banner, layout, ui.notes));
  if (state.page === "admin") {
    renderAdmin(ui.admin);
    return;
  }
  renderSidebar();
  renderList();
  if (state.current) renderThread(ui.thread, state.current);
  else renderEmptyThread(ui.thread);
  renderPanel();
  refreshList();
}

function topbar() {
  const search = h("input.search-input", { type: "search", placeholder: t("search_ph"), "aria-label": t("search_ph"), dir: "auto", id: "search" });
  const results = h("div.search-results", { hidden: true });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") runSearch(search.value, results);
    if (event.key === "Escape") { results.hidden = true; search.blur(); }
  });
  search.addEventListener("focus", () => { if (results.childElementCount) results.hidden = false; });
  document.addEventListener("mousedown", (event) => {
    if (!results.contains(event.target) && event.target !== search) results.hidden = true;
  });
  const presence = h("select.presence-select", { "aria-label": t("presence"), id: "presence" },
    ["online", "away", "offline"].map((p) => h("option", { value: p, selected: state.me.presence === p }, t(`pr_${p}`))));
  presence.addEventListener("change", async () => {
    try {
      await api.put("/me/presence", { presence: presence.value });
      state.me.presence = presence.value;
      dot.className = `presence-dot ${presence.value}`;
    } catch (error) {
      toast(t("failed", { error: error.message }), "error");
      presence.value = state.me.presence;
    }
  });
  const dot = h(`span.presence-dot.${state.me.presence}`);
  const bell = h("button.icon-btn.bell", { title: t("notifications"), "aria-label": t("notifications"), onclick: toggleNotifications },
    icon("bell", 18), h("span.badge.notif-count", { hidden: true }));
  const alertsOn = "Notification" in window && Notification.permission === "granted";
  return h("header.topbar", {},
    h("div.brand", {}, h("span.logo", {}, "پ"), h("strong", {}, t("app"))),
    h("nav.top-nav", {},
      h(`button.top-tab${state.page === "inbox" ? ".active" : ""}`, { onclick: () => { state.page = "inbox"; renderShell(); }, "data-page": "inbox" }, icon("inbox", 16), t("inbox")),
      h(`button.top-tab${state.page === "reports" ? ".active" : ""}`, { onclick: () => { state.page = "reports"; renderShell(); }, "data-page": "reports" }, icon("clock", 16), t("reports")),
      isAdmin() ? h(`button.top-tab${state.page === "admin" ? ".active" : ""}`, { onclick: () => { state.page = "admin"; renderShell(); }, "data-page": "admin" }, icon("gear", 16), t("admin")) : null),
    h("div.search-wrap", {}, icon("search", 16), search, h("kbd.search-kbd", {}, "/"), results),
    h("div.top-actions", {},
      "Notification" in window && !alertsOn
        ? h("button.btn.xs.ghost", { onclick: async (e) => { await Notification.requestPermission(); e.target.closest("button").remove(); } }, icon("bell", 14), t("enable_notifications"))
        : null,
      bell,
      h("button.icon-btn", { title: t("shortcuts"), "aria-label": t("shortcuts"), onclick: showShortcuts }, icon("keyboard", 18)),
      h("button.btn.xs.ghost.lang", { onclick: switchLanguage, id: "lang-switch" }, icon("globe", 14), t("language")),
      h("div.me", {}, avatar(state.me.name || state.me.email, "sm"), dot,
        h("div.me-text", {}, h("strong", { dir: "auto" }, state.me.name || state.me.email), presence)),
      h("button.icon-btn", { title: t("logout"), "aria-label": t("logout"), onclick: logout }, icon("logout", 18))));
}

async function switchLanguage() {
  const next = locale() === "fa" ? "en" : "fa";
  setLocale(next);
  localStorage.setItem("pishkhan.locale", next);
  state.me.locale = next;
  try {
    await api.put("/me/preferences", { locale: next });
  } catch {
    /* kept in this browser until the server keeps preferences */
  }
  renderShell();
  updateTitle();
}

async function logout() {
  try { await api.post("/auth/logout"); } catch { /* already gone */ }
  live?.stop();
  state.me = null;
  state.current = null;
  state.currentId = null;
  renderLogin();
}

// ---------------------------------------------------------------- sidebar

function filterSelect(name, label, options) {
  const node = h("select.select.block", { "aria-label": label, "data-filter": name },
    h("option", { value: "" }, `${label}: ${t("any")}`),
    options.map(([v, text]) => h("option", { value: String(v), selected: String(state.filters[name]) === String(v) }, text)));
  node.addEventListener("change", () => { state.filters[name] = node.value; refreshList(); renderSidebar(); });
  return node;
}

function renderSidebar() {
  const counts = state.counts;
  const views = VIEWS.map(([key, label, ic]) => {
    const count = counts ? counts[key] : key === "mine" ? mineUnseen() : 0;
    return h(`button.nav-item${state.view === key ? ".active" : ""}`, { "data-view": key, onclick: () => { state.view = key; refreshList(); renderSidebar(); } },
      icon(ic, 16), h("span", {}, t(label)), count ? h("span.badge", {}, num(count)) : null);
  });
  const channels = [...new Set([...state.list.map((c) => c.channel), state.filters.channel].filter(Boolean))];
  replace(ui.sidebar,
    h("div.side-section", {}, h("h5", {}, t("views")), views),
    h("div.side-section", {}, h("h5", {}, t("status")),
      h("div.status-pills", {}, ["", ...STATUSES].map((s) =>
        h(`button.pill${state.filters.status === s ? ".active" : ""}`, { "data-status": s || "any", onclick: () => { state.filters.status = s; refreshList(); renderSidebar(); } },
          s ? t(`st_${s}`) : t("any"))))),
    h("div.side-section", {}, h("h5", {}, t("filters")),
      filterSelect("channel", t("channel"), channels.map((c) => [c, channelName(c)])),
      state.labels.length ? filterSelect("label", t("label"), state.labels.map((l) => [l.name, l.name])) : null,
      state.teams.length ? filterSelect("team", t("team"), state.teams.map((tm) => [tm.id, tm.name])) : null),
    h("div.side-section", {}, h("h5", {}, t("sort")),
      h("div.seg", {}, ["activity", "waiting"].map((s) =>
        h(`button.seg-item${state.sort === s ? ".active" : ""}`, { onclick: () => { state.sort = s; refreshList(); renderSidebar(); }, "data-sort": s }, t(`sort_${s}`))))));
}

function mineUnseen() {
  return state.list.filter((c) => c.assignee_id === state.me.id && isUnread(c)).length;
}

// ---------------------------------------------------------------- list

function isUnread(c) {
  return (c.unread || 0) > 0 || state.unseen.has(c.id);
}

function matchesView(c) {
  if (state.view === "mine") return c.assignee_id === state.me.id;
  if (state.view === "unassigned") return c.assignee_id === null || c.assignee_id === undefined;
  if (state.view === "teams") return c.team_id !== null && (state.me.team_ids || []).includes(c.team_id);
  return true;
}

let listTimer = null;
let listSeq = 0;

function refreshList() {
  clearTimeout(listTimer);
  listTimer = setTimeout(loadList, 120);
}

async function loadList() {
  if (!state.me || state.page !== "inbox") return;
  const seq = ++listSeq;
  const params = new URLSearchParams({ view: state.view, sort: state.sort, limit: "100" });
  if (state.view === "mine") params.set("assignee", "me");
  if (state.view === "unassigned") params.set("assignee", "unassigned");
  for (const [key, value] of Object.entries(state.filters)) if (value) params.set(key, value);
  let data;
  try {
    data = await api.get(`/conversations?${params}`);
  } catch (error) {
    if (error.status !== 401) toast(t("failed", { error: error.message }), "error");
    return;
  }
  if (seq !== listSeq) return;
  let items = data.conversations.filter(matchesView);
  if (state.filters.label) items = items.filter((c) => !c.labels || c.labels.includes(state.filters.label));
  if (state.sort === "waiting") {
    const key = (c) => c.waiting_since || "9999";
    items = items.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  }
  state.list = items;
  state.counts = data.counts || null;
  renderList();
  renderSidebar();
  updateTitle();
}

function renderList() {
  const header = h("div.list-head", {},
    h("h3", {}, t(VIEWS.find((v) => v[0] === state.view)[1])),
    h("span.muted.small", {}, num(state.list.length)));
  if (!state.list.length) {
    replace(ui.list, header, h("div.empty-list", {}, icon("inbox", 36), h("p", {}, t("no_conversations"))));
    return;
  }
  const rows = state.list.map((c) => {
    const unread = isUnread(c);
    const name = c.customer?.name || `#${c.customer_id}`;
    const assignee = c.assignee?.name || agentName(c.assignee_id);
    return h(`button.conv${c.id === state.currentId ? ".active" : ""}${unread ? ".unread" : ""}`,
      { "data-id": c.id, onclick: () => openConversation(c.id) },
      avatar(name),
      h("div.conv-main", {},
        h("div.conv-top", {},
          h("span.conv-name", { dir: "auto" }, name),
          h(`span.channel-badge.sm.ch-${channelType(c.channel)}`, {}, channelName(c.channel)),
          h("time.conv-time", { datetime: c.last_activity_at, title: fullTime(c.last_activity_at) }, shortTime(c.last_activity_at))),
        c.subject ? h("div.conv-subject", { dir: "auto" }, c.subject) : null,
        h("div.conv-preview", { dir: "auto" }, c.preview || ""),
        h("div.conv-foot", {},
          h(`span.status.sm.st-${c.status}`, {}, t(`st_${c.status}`)),
          slaBadge(c.sla, { small: true }),
          (c.labels || []).slice(0, 3).map((l) => h("span.chip.sm", { dir: "auto" }, l)),
          h("span.conv-assignee", { dir: "auto" }, icon("user", 12), assignee || t("unassigned")),
          unread ? h("span.unread-dot", { title: t("unread") }, c.unread > 1 ? num(c.unread) : "") : null)));
  });
  replace(ui.list, header, h("div.conv-list", { role: "list" }, rows));
}

function updateTitle() {
  const count = state.counts ? state.counts.mine : mineUnseen();
  document.title = count ? `(${num(count)}) ${t("app")}` : t("app");
}

// ---------------------------------------------------------------- thread and customer

let threadSeq = 0;

async function openConversation(id) {
  if (state.page !== "inbox") { state.page = "inbox"; renderShell(); }
  state.currentId = id;
  state.unseen.delete(id);
  live?.view(id);
  ui.list.querySelectorAll(".conv").forEach((n) => n.classList.toggle("active", Number(n.dataset.id) === id));
  await refreshThread({ fresh: true });
  api.post(`/conversations/${id}/read`).then(() => refreshList(), () => {});
  const row = ui.list.querySelector(`.conv[data-id="${id}"]`);
  row?.classList.remove("unread");
  row?.scrollIntoView({ block: "nearest" });
  updateTitle();
}

let threadTimer = null;

function scheduleThread() {
  clearTimeout(threadTimer);
  threadTimer = setTimeout(() => refreshThread(), 120);
}

async function refreshThread({ fresh = false } = {}) {
  const id = state.currentId;
  if (!id) return;
  const seq = ++threadSeq;
  let detail;
  try {
    detail = await loadConversation(id);
  } catch (error) {
    if (seq !== threadSeq) return;
    if (error.status === 404) {
      state.current = null;
      state.currentId = null;
      live?.view(null);
      renderEmptyThread(ui.thread);
      renderPanel();
      return;
    }
    toast(t("failed", { error: error.message }), "error");
    return;
  }
  if (seq !== threadSeq || state.currentId !== id || state.page !== "inbox") return;
  state.current = detail;
  renderThread(ui.thread, detail, { keepComposer: !fresh });
  state.customerId = detail.customer?.id ?? detail.customer_id;
  renderPanel();
}

async function renderPanel() {
  if (!ui.customer) return;
  const profile = state.current?.customer;
  if (profile && profile.identities) return renderCustomer(ui.customer, profile);
  if (state.customerId) {
    try {
      renderCustomer(ui.customer, await api.get(`/customers/${state.customerId}`));
    } catch {
      renderCustomer(ui.customer, null);
    }
  } else {
    renderCustomer(ui.customer, null);
  }
}

on("refresh-thread", scheduleThread);
on("refresh-list", refreshList);
on("refresh-customer", () => { if (state.currentId) scheduleThread(); else renderPanel(); });
on("open-conversation", (id) => openConversation(id));
on("typing", (id) => live?.typing(id));

// ---------------------------------------------------------------- live events

function handleEvent(event) {
  const type = event.type || "";
  const data = event.data || {};
  const message = data.message;
  if (event.conversation_id) {
    refreshList();
    if (event.conversation_id === state.currentId) scheduleThread();
  }
  if (type === "agent.presence" || type === "agent.updated" || type === "agent.teams_changed") refreshAgents();
  if (type === "agent.teams_changed" && data.agent_id === state.me.id) {
    state.me.team_ids = data.team_ids; // the server's stream follows them from its next event on
    refreshList();
  }
  if (type.startsWith("team.") || type.startsWith("label.") || type.startsWith("canned_response.")) refreshLists();
  if (data.customer?.name && event.conversation_id) customerNames.set(event.conversation_id, data.customer.name);
  if (event.replayed) return;
  const mine = event.assignee_id === state.me.id;
  if (type === "message.created" && message && message.direction === "in" && event.conversation_id !== state.currentId) {
    if (mine || (event.assignee_id === null && state.view === "unassigned")) state.unseen.add(event.conversation_id);
    if (mine) alert(t("new_message", { name: customerNameOf(event.conversation_id) }), message.text, event.conversation_id);
  }
  if (type === "message.created" && message && message.direction === "in" && event.conversation_id === state.currentId && document.hidden) {
    alert(t("new_message", { name: customerNameOf(event.conversation_id) }), message.text, event.conversation_id);
  }
  if (type === "conversation.assigned" && data.to === state.me.id && event.conversation_id !== state.currentId) {
    state.unseen.add(event.conversation_id);
    alert(t("assigned_you"), customerNameOf(event.conversation_id), event.conversation_id);
  }
  if (type === "notification.created") {
    if (data.agent_id !== undefined && data.agent_id !== state.me.id) return;
    const note = data.notification || data;
    state.notifications.unshift(note);
    renderNotifBadge();
    if (note.kind === "sla_warning") alert(slaNotificationTitle(note), slaNotificationText(note), note.conversation_id);
    if (note.kind === "mention") {
      alert(t("mentioned_you", { actor: note.actor?.name || t("someone") }), note.text || "", note.conversation_id);
    } else if (note.kind === "assigned" && !(type === "conversation.assigned")) {
      /* the assignment event already alerted */
    }
  } else if (type === "note.created" && message && !state.notificationsApi && mentionsMe(message)) {
    // Servers without notifications: recognise an @mention of me in a note ourselves.
    const note = { id: `local-${event.id}`, kind: "mention", conversation_id: event.conversation_id, actor: { name: agentName(message.author_agent_id) }, text: message.text, created_at: event.created_at };
    state.notifications.unshift(note);
    renderNotifBadge();
    alert(t("mentioned_you", { actor: note.actor.name }), message.text, event.conversation_id);
  }
  updateTitle();
}

function mentionsMe(message) {
  if (message.author_agent_id === state.me.id) return false;
  if ((message.mentions || []).includes(state.me.id)) return true;
  const text = message.text || "";
  const names = [state.me.name, state.me.email, (state.me.name || "").replace(/\s+/g, "_")].filter(Boolean);
  return names.some((n) => text.includes(`@${n}`));
}

const customerNames = new Map();
const lastAlert = new Map();

function customerNameOf(conversationId) {
  return customerNames.get(conversationId) || state.list.find((c) => c.id === conversationId)?.customer?.name || `#${num(conversationId)}`;
}

function alert(title, body, conversationId) {
  const now = Date.now();
  if (now - (lastAlert.get(conversationId) || 0) < 3000) return; // one alert per burst
  lastAlert.set(conversationId, now);
  beep();
  toast(`${title}${body ? " — " + body.slice(0, 80) : ""}`, "notify", { action: t("conversation"), onAction: () => openConversation(conversationId), timeout: 7000 });
  desktopNotify(title, body.slice(0, 140), () => openConversation(conversationId));
}

let listsTimer = null;
/** Teams, labels and canned responses changed somewhere: read them again (debounced). */
function refreshLists() {
  clearTimeout(listsTimer);
  listsTimer = setTimeout(async () => {
    const [teams, labels, canned] = await Promise.all(["/teams", "/labels", "/canned-responses"].map((path) => api.get(path).catch(() => null)));
    if (teams) state.teams = teams.teams;
    if (labels) state.labels = labels.labels;
    if (canned) state.canned = canned.canned_responses;
  }, 300);
}

let agentsTimer = null;
function refreshAgents() {
  clearTimeout(agentsTimer);
  agentsTimer = setTimeout(async () => {
    const data = await api.optional("/agents", null).catch(() => null);
    if (data) state.agents = data.agents;
  }, 300);
}

// ---------------------------------------------------------------- notifications

async function loadNotifications() {
  try {
    const data = await api.get("/notifications?unread=1");
    state.notifications = data.notifications || [];
  } catch {
    state.notificationsApi = false;
  }
  renderNotifBadge();
}

function renderNotifBadge() {
  const badge = document.querySelector(".notif-count");
  if (!badge) return;
  const unread = state.notifications.filter((n) => !n.read_at).length;
  badge.hidden = unread === 0;
  badge.textContent = num(unread);
  if (!ui.notes.hidden) renderNotifPanel();
}

function renderNotifPanel() {
  const items = state.notifications.slice(0, 30);
  replace(ui.notes,
    h("div.notif-head", {}, h("strong", {}, t("notifications")),
      h("button.link.small", { onclick: async () => {
        state.notifications.forEach((n) => { n.read_at = n.read_at || new Date().toISOString(); });
        if (state.notificationsApi) api.post("/notifications/read-all").catch(() => {});
        renderNotifBadge();
      } }, t("mark_all_read"))),
    items.length ? items.map((n) =>
      h(`button.notif${n.read_at ? "" : ".unread"}`, { onclick: () => {
        n.read_at = new Date().toISOString();
        if (state.notificationsApi && typeof n.id === "number") api.post(`/notifications/${n.id}/read`).catch(() => {});
        ui.notes.hidden = true;
        renderNotifBadge();
        openConversation(n.conversation_id);
      } },
        icon(n.kind === "mention" ? "note" : "user", 16),
        h("div", {}, h("strong", {}, n.kind === "mention" ? t("mentioned_you", { actor: n.actor?.name || t("someone") }) : n.kind === "csat_low" ? t("csat_low_title") : n.kind === "sla_warning" ? slaNotificationTitle(n) : n.kind === "automation" ? t("au_notification") : t("assigned_you")),
          h("div.muted.small", { dir: "auto" }, (n.kind === "sla_warning" ? slaNotificationText(n) : n.text || "").slice(0, 120)),
          h("time.muted.small", {}, shortTime(n.created_at))))) : h("p.muted.pad", {}, t("no_notifications")));
}

function toggleNotifications() {
  ui.notes.hidden = !ui.notes.hidden;
  if (!ui.notes.hidden) renderNotifPanel();
}

// ---------------------------------------------------------------- search

async function runSearch(q, results) {
  q = q.trim();
  if (!q) { results.hidden = true; return; }
  results.hidden = false;
  replace(results, h("p.muted.pad", {}, t("loading")));
  let data;
  try {
    data = await api.get(`/search?q=${encodeURIComponent(q)}&limit=20`);
  } catch (error) {
    replace(results, h("p.muted.pad", {}, error instanceof api.ApiMissing ? t("search_unavailable") : t("failed", { error: error.message })));
    return;
  }
  const conversations = data.conversations || [];
  const customers = data.customers || [];
  if (!conversations.length && !customers.length) {
    replace(results, h("p.muted.pad", {}, t("search_none")));
    return;
  }
  const close = () => { results.hidden = true; };
  replace(results,
    conversations.length ? h("div.sr-group", {}, h("h6", {}, t("search_conversations")),
      conversations.map((c) => h("button.sr-item", { "data-id": c.id, onclick: () => { close(); openConversation(c.id); } },
        h("div.sr-top", {}, h("strong", { dir: "auto" }, c.customer?.name || `#${c.id}`),
          h(`span.channel-badge.sm.ch-${channelType(c.channel)}`, {}, channelName(c.channel)),
          h(`span.status.sm.st-${c.status}`, {}, t(`st_${c.status}`))),
        h("div.sr-snippet", { dir: "auto" }, c.snippet || c.preview || c.subject || "")))) : null,
    customers.length ? h("div.sr-group", {}, h("h6", {}, t("search_customers")),
      customers.map((c) => h("button.sr-item", { onclick: () => { close(); openCustomer(c.id); } },
        h("div.sr-top", {}, avatar(c.name, "sm"), h("strong", { dir: "auto" }, c.name || `#${c.id}`)),
        h("div.sr-snippet", { dir: "ltr" }, (c.contact_points || []).map((p) => p.value).join(" · "))))) : null);
}

async function openCustomer(id) {
  try {
    const profile = await api.get(`/customers/${id}`);
    const latest = (profile.conversations || [])[0];
    if (latest) return openConversation(latest.id);
    state.customerId = id;
    renderCustomer(ui.customer, profile);
  } catch (error) {
    toast(t("failed", { error: error.message }), "error");
  }
}

// ---------------------------------------------------------------- keyboard

function showShortcuts() {
  if (document.querySelector(".modal-back")) return;
  const keys = [["j", "sc_next"], ["k", "sc_prev"], ["r", "sc_reply"], ["n", "sc_note"], ["e", "sc_resolve"], ["a", "sc_assign"], ["/", "sc_search"], ["Ctrl + Enter", "sc_send"], ["?", "sc_help"]];
  const back = h("div.modal-back", { onclick: (e) => { if (e.target === back) back.remove(); } },
    h("div.modal", { role: "dialog", "aria-label": t("shortcuts") },
      h("div.modal-head", {}, h("h3", {}, t("shortcuts")), h("button.icon-btn", { onclick: () => back.remove(), "aria-label": t("close") }, "×")),
      h("dl.keys", {}, keys.map(([k, label]) => [h("dt", {}, h("kbd", {}, k)), h("dd", {}, t(label))]))));
  document.body.appendChild(back);
}

function move(step) {
  if (!state.list.length) return;
  const index = state.list.findIndex((c) => c.id === state.currentId);
  const next = index === -1 ? 0 : Math.max(0, Math.min(state.list.length - 1, index + step));
  openConversation(state.list[next].id);
}

document.addEventListener("keydown", (event) => {
  if (!state.me || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
  if (event.key === "Escape") { document.querySelector(".modal-back")?.remove(); return; }
  if (state.page !== "inbox" && event.key !== "?") return;
  const actions = {
    j: () => move(1),
    k: () => move(-1),
    r: () => focusComposer("reply"),
    n: () => focusComposer("note"),
    e: () => state.current && setStatus("resolved"),
    a: () => assignToMe(),
    "/": () => document.getElementById("search")?.focus(),
    "?": showShortcuts,
  };
  const action = actions[event.key];
  if (action) {
    event.preventDefault();
    action();
  }
});

window.addEventListener("pishkhan:unauthorized", () => {
  if (state.me) { live?.stop(); state.me = null; renderLogin(); }
});

boot();
