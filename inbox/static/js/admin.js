// Admin pages: agents, teams, canned responses, labels, channels, routing rules and the FAQ bot.

import * as api from "./api.js";
import { avatar, h, icon, replace, toast } from "./dom.js";
import { AUTOMATION_TABS } from "./automation.js";
import { FAQ_TABS } from "./faq.js";
import { channelName, channelType, fullTime, num, t } from "./i18n.js";
import { agentName, state } from "./state.js";

const TABS = [
  ["agents", "ad_agents", "users"],
  ["teams", "ad_teams", "users"],
  ["canned", "ad_canned", "note"],
  ["labels", "ad_labels", "tag"],
  ["channels", "ad_channels", "inbox"],
  ["rules", "ad_rules", "gear"],
  ...FAQ_TABS.map(([key, label, ic]) => [key, label, ic]),
  ...AUTOMATION_TABS.map(([key, label, ic]) => [key, label, ic]),
];

function fail(error) {
  toast(t("failed", { error: error.message }), "error");
}

function table(headers, rows) {
  if (!rows.length) return h("p.muted.empty-row", {}, t("empty"));
  return h("table.table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))), h("tbody", {}, rows));
}

function memberIds(team) {
  return team.members.map((m) => m.agent_id);
}

async function agentsTab(body, rerender) {
  const [{ agents }, teams] = await Promise.all([api.get("/agents"), api.get("/teams")]);
  const patch = async (id, changes) => {
    try {
      await api.patch(`/agents/${id}`, changes);
      rerender();
    } catch (error) {
      fail(error);
    }
  };
  const rows = agents.map((a) => {
    const capacity = h("input.input.xs.num", { type: "number", min: 1, max: 1000, value: a.capacity, "aria-label": t("capacity") });
    capacity.addEventListener("change", () => patch(a.id, { capacity: Number(capacity.value) }));
    const role = h("select.select.xs", { "aria-label": t("role") },
      ["agent", "admin"].map((r) => h("option", { value: r, selected: a.role === r }, t(`role_${r}`))));
    role.addEventListener("change", () => patch(a.id, { role: role.value }));
    const teamsOf = a.team_ids;
    const addTeam = h("select.select.xs", { "aria-label": t("teams") }, h("option", { value: "" }, "+"),
      teams.teams.filter((tm) => !teamsOf.includes(tm.id)).map((tm) => h("option", { value: tm.id }, tm.name)));
    addTeam.addEventListener("change", () => addTeam.value && patch(a.id, { team_ids: [...teamsOf, Number(addTeam.value)] }));
    return h(`tr${a.active === false ? ".inactive" : ""}`, {},
      h("td", {}, h("div.who", {}, avatar(a.name || a.email, "sm"), h("div", {}, h("strong", { dir: "auto" }, a.name || "—"), h("div.muted.small", { dir: "ltr" }, a.email)))),
      h("td", {}, role),
      h("td", {}, h(`span.presence-dot.${a.presence || "offline"}`), t(`pr_${a.presence || "offline"}`)),
      h("td", {}, capacity),
      h("td", {}, num(a.load ?? a.open_conversations ?? 0)),
      h("td", {}, teamsOf.map((id) => h("span.chip.sm", { dir: "auto" }, teams.teams.find((tm) => tm.id === id)?.name || `#${id}`,
        h("button.chip-x", { onclick: () => patch(a.id, { team_ids: teamsOf.filter((x) => x !== id) }), title: t("remove") }, "×"))),
      teams.teams.length > teamsOf.length ? addTeam : null),
      h("td", {}, a.id === state.me.id ? null :
        h(`button.btn.xs${a.active === false ? "" : ".danger-ghost"}`, { onclick: () => patch(a.id, { active: a.active === false }) },
          t(a.active === false ? "activate" : "deactivate"))));
  });
  const form = h("form.inline-form", {},
    h("input.input.sm", { name: "name", placeholder: t("name"), dir: "auto", required: true }),
    h("input.input.sm", { name: "email", type: "email", placeholder: t("email"), dir: "ltr", required: true }),
    h("input.input.sm", { name: "password", type: "password", placeholder: t("password"), minlength: 10, required: true }),
    h("select.select.sm", { name: "role" }, h("option", { value: "agent" }, t("role_agent")), h("option", { value: "admin" }, t("role_admin"))),
    h("input.input.sm.num", { name: "capacity", type: "number", min: 1, max: 1000, placeholder: t("capacity") }),
    teams.teams.length ? h("select.select.sm", { name: "teams", multiple: true, size: 1, "aria-label": t("teams") }, teams.teams.map((tm) => h("option", { value: tm.id }, tm.name))) : null,
    h("button.btn.primary.sm", { type: "submit" }, "+ " + t("invite")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const payload = { email: data.get("email"), name: data.get("name"), password: data.get("password"), role: data.get("role") };
    if (data.get("capacity")) payload.capacity = Number(data.get("capacity"));
    const teamIds = data.getAll("teams").map(Number);
    try {
      await api.post("/agents", { ...payload, team_ids: teamIds });
      toast(t("saved"), "success");
      rerender();
    } catch (error) {
      fail(error);
    }
  });
  replace(body, h("div.card", {}, h("h3", {}, t("invite")), form),
    h("div.card", {}, table([t("name"), t("role"), t("presence"), t("capacity"), t("load"), t("teams"), ""], rows)));
}

async function teamsTab(body, rerender) {
  const [{ teams }, { agents }] = await Promise.all([api.get("/teams"), api.get("/agents")]);
  const rows = teams.map((team) => {
    const ids = memberIds(team);
    const add = h("select.select.xs", { "aria-label": t("members") }, h("option", { value: "" }, "+"),
      agents.filter((a) => !ids.includes(a.id)).map((a) => h("option", { value: a.id }, a.name || a.email)));
    const save = async (members) => {
      try {
        await api.patch(`/teams/${team.id}`, { members });
        rerender();
      } catch (error) { fail(error); }
    };
    const without = (id) => team.members.filter((m) => m.agent_id !== id);
    const toggleLead = (id) => save(team.members.map((m) => (m.agent_id === id ? { ...m, lead: !m.lead } : m)));
    add.addEventListener("change", () => add.value && save([...team.members, { agent_id: Number(add.value), lead: false }]));
    return h("tr", {},
      h("td", {}, h("strong", { dir: "auto" }, team.name), team.configured ? h("span.chip.sm", { title: "config.yaml" }, "config") : null),
      h("td", {}, team.members.map((m) => h(`span.chip${m.lead ? ".lead" : ""}`, { dir: "auto" },
        h("button.chip-x", { onclick: () => toggleLead(m.agent_id), title: t("lead"), "aria-pressed": String(m.lead) }, m.lead ? "★" : "☆"),
        agentName(m.agent_id) || `#${m.agent_id}`,
        h("button.chip-x", { onclick: () => save(without(m.agent_id)), title: t("remove") }, "×"))), add),
      h("td", {}, team.configured ? null : h("button.btn.xs.danger-ghost", {
        onclick: async () => { try { await api.del(`/teams/${team.id}`); rerender(); } catch (e) { fail(e); } },
      }, t("remove"))));
  });
  const name = h("input.input.sm", { placeholder: t("name"), dir: "auto", required: true });
  const form = h("form.inline-form", {}, name, h("button.btn.primary.sm", { type: "submit" }, "+ " + t("new_team")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.post("/teams", { name: name.value, members: [] });
      state.teams = (await api.get("/teams")).teams;
      rerender();
    } catch (error) { fail(error); }
  });
  replace(body, h("div.card", {}, form), h("div.card", {}, table([t("name"), t("members"), ""], rows)));
}

async function cannedTab(body, rerender) {
  const data = await api.get("/canned-responses");
  const rows = data.canned_responses.map((c) =>
    h("tr", {}, h("td", {}, h("code", {}, `/${c.shortcut}`)), h("td", { dir: "auto" }, c.title || ""),
      h("td.wrap-text", { dir: "auto" }, c.text),
      h("td", {}, h("button.btn.xs.danger-ghost", { onclick: async () => { try { await api.del(`/canned-responses/${c.id}`); rerender(); } catch (e) { fail(e); } } }, t("remove")))));
  const form = h("form.inline-form", {},
    h("input.input.sm", { name: "shortcut", placeholder: t("shortcut"), dir: "ltr", required: true, pattern: "[^\\s/]+" }),
    h("input.input.sm", { name: "title", placeholder: t("title"), dir: "auto" }),
    h("textarea.input.sm.grow", { name: "text", placeholder: t("text"), dir: "auto", required: true, rows: 1 }),
    h("button.btn.primary.sm", { type: "submit" }, "+ " + t("add")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    try { await api.post("/canned-responses", { shortcut: f.get("shortcut"), title: f.get("title"), text: f.get("text") }); rerender(); } catch (error) { fail(error); }
  });
  replace(body, h("div.card", {}, form), h("div.card", {}, table([t("shortcut"), t("title"), t("text"), ""], rows)));
}

async function labelsTab(body, rerender) {
  const data = await api.get("/labels");
  const rows = data.labels.map((l) => {
    const chip = h("span.chip", { dir: "auto" }, l.name);
    if (l.color) chip.style.borderColor = l.color;
    return h("tr", {}, h("td", {}, chip), h("td", {}, h("code", {}, l.color || "")),
      h("td", {}, h("button.btn.xs.danger-ghost", { onclick: async () => { try { await api.del(`/labels/${l.id}`); rerender(); } catch (e) { fail(e); } } }, t("remove"))));
  });
  const form = h("form.inline-form", {},
    h("input.input.sm", { name: "name", placeholder: t("name"), dir: "auto", required: true }),
    h("input.input.sm.color", { name: "color", type: "color", value: "#0f766e", "aria-label": t("color") }),
    h("button.btn.primary.sm", { type: "submit" }, "+ " + t("add")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    try { await api.post("/labels", { name: f.get("name"), color: f.get("color") }); rerender(); } catch (error) { fail(error); }
  });
  replace(body, h("div.card", {}, form), h("div.card", {}, table([t("name"), t("color"), ""], rows)));
}

async function channelsTab(body) {
  const { channels } = await api.get("/channels");
  const rows = channels.map((c) =>
    h("tr", {},
      h("td", {}, h("strong", { dir: "ltr" }, c.name)),
      h("td", {}, h(`span.channel-badge.ch-${channelType(c.type)}`, {}, channelName(c.type))),
      h("td", {}, h(`span.status.st-${c.status === "connected" || c.status === "ok" || c.status === "running" ? "open" : c.last_error ? "failed" : "pending"}`, {}, c.status || (c.enabled === false ? t("no") : t("yes")))),
      h("td", {}, c.team || "—"),
      h("td", {}, c.last_message_at ? fullTime(c.last_message_at) : "—"),
      h("td.wrap-text", { dir: "auto" }, c.last_error || "—")));
  replace(body, h("div.card", {}, table([t("name"), t("type"), t("status"), t("team"), t("last_message"), t("last_error")], rows)));
}

const splitList = (value) => value.split(/[,،\n]/).map((x) => x.trim()).filter(Boolean);

function ruleFields(rule, teams, channels) {
  // The inputs of one rule's conditions; `read()` gives the body the API takes.
  const team = h("select.select.xs", { "aria-label": t("team"), required: true },
    teams.map((tm) => h("option", { value: tm.id, selected: rule.team_id === tm.id }, tm.name)));
  const chans = h("select.select.xs", { multiple: true, size: Math.min(3, Math.max(1, channels.length)), "aria-label": t("channel") },
    channels.map((c) => h("option", { value: c.name, selected: (rule.channels || []).includes(c.name) }, c.name)));
  const language = h("select.select.xs", { "aria-label": t("rule_language") },
    h("option", { value: "" }, t("rule_any")),
    ["fa", "en"].map((l) => h("option", { value: l, selected: rule.language === l }, t(`lang_${l}`))));
  const keywords = h("input.input.xs", { value: (rule.keywords || []).join("، "), placeholder: t("rule_keywords"), dir: "auto", "aria-label": t("rule_keywords") });
  const labels = h("input.input.xs", { value: (rule.customer_labels || []).join("، "), placeholder: t("labels"), dir: "auto", "aria-label": t("labels") });
  const read = () => ({
    team_id: Number(team.value),
    channels: [...chans.selectedOptions].map((o) => o.value),
    language: language.value || null,
    keywords: splitList(keywords.value),
    customer_labels: splitList(labels.value),
  });
  return { cells: [team, chans, language, keywords, labels], read };
}

async function rulesTab(body, rerender) {
  const [data, { teams }, { channels }] = await Promise.all([api.get("/routing/rules"), api.get("/teams"), api.get("/channels")]);
  const configured = data.rules.filter((r) => r.configured);
  const stored = data.rules.filter((r) => !r.configured);
  const run = async (promise) => {
    try {
      await promise;
      toast(t("saved"), "success");
      rerender();
    } catch (error) { fail(error); }
  };
  const configRows = configured.map((r, i) =>
    h("tr", {}, h("td", {}, num(i + 1)), h("td", { dir: "auto" }, r.team || "", " ", h("span.chip.sm", { title: "config.yaml" }, "config")),
      h("td", {}, (r.channels || []).join(", ")), h("td", {}, r.language ? t(`lang_${r.language}`) : t("rule_any")),
      h("td", { dir: "auto" }, (r.keywords || []).join("، ")), h("td", { dir: "auto" }, (r.customer_labels || []).join("، ")), h("td", {})));
  const ids = stored.map((r) => r.id);
  const move = (index, by) => {
    const order = [...ids];
    [order[index], order[index + by]] = [order[index + by], order[index]];
    run(api.put("/routing/rules/order", { ids: order }));
  };
  const storedRows = stored.map((r, i) => {
    const fields = ruleFields(r, teams, channels);
    const enabled = h("input", { type: "checkbox", checked: r.enabled, "aria-label": t("enabled") });
    enabled.addEventListener("change", () => run(api.patch(`/routing/rules/${r.id}`, { enabled: enabled.checked })));
    return h(`tr${r.enabled ? "" : ".inactive"}`, {},
      h("td", {}, num(configured.length + i + 1)),
      fields.cells.map((cell) => h("td", {}, cell)),
      h("td", {}, h("label.small", {}, enabled, " ", t("enabled")),
        h("button.btn.xs", { onclick: () => move(i, -1), disabled: i === 0, title: t("rule_up") }, "↑"),
        h("button.btn.xs", { onclick: () => move(i, 1), disabled: i === stored.length - 1, title: t("rule_down") }, "↓"),
        h("button.btn.xs", { onclick: () => run(api.patch(`/routing/rules/${r.id}`, fields.read())) }, t("save")),
        h("button.btn.xs.danger-ghost", { onclick: () => run(api.del(`/routing/rules/${r.id}`)) }, t("remove"))));
  });
  const headers = ["#", t("team"), t("channel"), t("rule_language"), t("rule_keywords"), t("labels"), ""];
  const rows = [...configRows, ...storedRows];
  const adder = ruleFields({}, teams, channels);
  const form = h("form.inline-form", {}, adder.cells, h("button.btn.primary.sm", { type: "submit" }, "+ " + t("rule_add")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(api.post("/routing/rules", adder.read()));
  });
  replace(body,
    teams.length ? h("div.card", {}, h("h3", {}, t("rule_add")), form, h("p.muted.small", {}, t("rule_help"))) : null,
    h("div.card", {}, rows.length ? table(headers, rows) : h("p.muted", {}, t("rules_none")),
      data.default_team ? h("p.muted.small", {}, `default_team: ${data.default_team}`) : null));
}

const RENDER = {
  agents: agentsTab, teams: teamsTab, canned: cannedTab, labels: labelsTab, channels: channelsTab, rules: rulesTab,
  ...Object.fromEntries(FAQ_TABS.map(([key, , , render]) => [key, render])),
  ...Object.fromEntries(AUTOMATION_TABS.map(([key, , , render]) => [key, render])),
};

export async function renderAdmin(root) {
  const body = h("div.admin-body", {}, h("p.muted", {}, t("loading")));
  const nav = h("nav.admin-nav", {}, TABS.map(([key, label, ic]) =>
    h(`button.nav-item${state.adminTab === key ? ".active" : ""}`, { "data-tab": key, onclick: () => { state.adminTab = key; renderAdmin(root); } },
      icon(ic, 16), h("span", {}, t(label)))));
  replace(root, h("div.admin", {}, nav, h("div.admin-main", {}, h("h2.admin-title", {}, t(TABS.find((x) => x[0] === state.adminTab)[1])), body)));
  const rerender = () => renderAdmin(root);
  try {
    await RENDER[state.adminTab](body, rerender);
  } catch (error) {
    replace(body, h("div.card", {}, h("p.muted", {}, t("failed", { error: error.message }))));
  }
}
