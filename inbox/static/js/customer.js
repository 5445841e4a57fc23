// The customer's 360° panel: who they are on every channel, and everything they said before.

import * as api from "./api.js";
import { csatSummary } from "./csat.js";
import { avatar, h, icon, replace, toast } from "./dom.js";
import { channelName, channelType, fullTime, num, shortTime, t } from "./i18n.js";
import { emit, state } from "./state.js";

function contactPoints(profile) {
  if (Array.isArray(profile.contact_points)) return profile.contact_points;
  return [
    ...(profile.emails || []).map((value) => ({ kind: "email", value })),
    ...(profile.phones || []).map((value) => ({ kind: "phone", value })),
  ];
}

function section(title, ...children) {
  return h("section.panel-section", {}, h("h4", {}, title), ...children);
}

async function patchCustomer(id, body) {
  try {
    await api.patch(`/customers/${id}`, body);
    toast(t("saved"), "success", { timeout: 2000 });
    emit("refresh-customer");
    return true;
  } catch (error) {
    toast(error instanceof api.ApiMissing ? t("not_available") : t("failed", { error: error.message }), "error");
    return false;
  }
}

function attributesEditor(profile) {
  const attrs = profile.attributes || {};
  const view = h(
    "dl.attrs",
    {},
    Object.entries(attrs).map(([key, value]) => [
      h("dt", { dir: "auto" }, key),
      h("dd", { dir: "auto" }, typeof value === "string" ? value : JSON.stringify(value)),
    ]),
  );
  const wrap = h("div", {}, Object.keys(attrs).length ? view : h("p.muted.small", {}, t("empty")));
  const edit = h("button.link.small", {
    onclick: () => {
      const rows = h("div.attr-rows");
      const addRow = (key = "", value = "") =>
        rows.appendChild(
          h("div.attr-row", {},
            h("input.input.sm", { value: key, placeholder: t("attr_key"), dir: "auto", "aria-label": t("attr_key") }),
            h("input.input.sm", { value: typeof value === "string" ? value : JSON.stringify(value), placeholder: t("attr_value"), dir: "auto", "aria-label": t("attr_value") }),
            h("button.chip-x", { onclick: (e) => e.currentTarget.parentElement.remove(), title: t("remove") }, "×")),
        );
      Object.entries(attrs).forEach(([k, v]) => addRow(k, v));
      addRow();
      replace(wrap, rows,
        h("div.pop-row", {},
          h("button.btn.xs", { onclick: () => addRow() }, "+ " + t("add")),
          h("button.btn.xs.primary", {
            onclick: async () => {
              const next = {};
              rows.querySelectorAll(".attr-row").forEach((row) => {
                const [k, v] = row.querySelectorAll("input");
                if (k.value.trim()) next[k.value.trim()] = v.value;
              });
              await patchCustomer(profile.id, { attributes: next });
            },
          }, t("save")),
          h("button.btn.xs", { onclick: () => emit("refresh-customer") }, t("cancel"))));
    },
  }, t("edit"));
  return [wrap, edit];
}

function customerLabels(profile) {
  const input = h("input.input.sm", { list: "label-options-c", placeholder: t("add_label"), dir: "auto", "aria-label": t("add_label") });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && input.value.trim()) patchCustomer(profile.id, { labels: { add: [input.value.trim()], remove: [] } });
  });
  return h("div.labels-row.wrap", {},
    (profile.labels || []).map((name) =>
      h("span.chip", { dir: "auto" }, name,
        h("button.chip-x", { title: t("remove"), onclick: () => patchCustomer(profile.id, { labels: { add: [], remove: [name] } }) }, "×"))),
    input,
    h("datalist", { id: "label-options-c" }, state.labels.map((l) => h("option", { value: l.name }))));
}

function mergeForm(profile) {
  const results = h("div.merge-results");
  const input = h("input.input.sm", { placeholder: t("merge_ph"), dir: "auto", "aria-label": t("merge_ph") });
  const doMerge = async (other) => {
    if (!other || other === profile.id) return;
    if (!confirm(t("merge_confirm", { other: `#${num(other)}` }))) return;
    try {
      await api.post(`/customers/${profile.id}/merge`, { other_id: other });
      toast(t("merged"), "success");
      emit("refresh-customer");
      emit("refresh-list");
    } catch (error) {
      toast(error instanceof api.ApiMissing ? t("not_available") : t("failed", { error: error.message }), "error");
    }
  };
  input.addEventListener("keydown", async (event) => {
    if (event.key !== "Enter") return;
    const q = input.value.trim();
    if (/^\d+$/.test(q)) return doMerge(Number(q));
    try {
      const data = await api.get(`/search?q=${encodeURIComponent(q)}&limit=8`);
      replace(results, (data.customers || []).filter((c) => c.id !== profile.id).map((c) =>
        h("button.menu-item", { onclick: () => doMerge(c.id) }, h("span", { dir: "auto" }, c.name || `#${c.id}`),
          h("small", { dir: "auto" }, (c.contact_points || []).map((p) => p.value).join("، ")))));
    } catch (error) {
      replace(results, h("p.muted.small", {}, error instanceof api.ApiMissing ? t("search_unavailable") : error.message));
    }
  });
  const details = h("details.merge", {}, h("summary", {}, icon("merge", 14), t("merge")), input, results);
  return details;
}

export function renderCustomer(pane, profile) {
  if (!profile) {
    replace(pane);
    return;
  }
  const owner = profile.owner || profile.responsible_agent;
  const channels = profile.channels || profile.channels_used || [];
  replace(
    pane,
    h("div.customer-card", {},
      avatar(profile.name, "lg"),
      h("h3", { dir: "auto" }, profile.name || `#${profile.id}`),
      h("div.muted.small", {}, `#${num(profile.id)}`, profile.last_contact_at ? " · " + shortTime(profile.last_contact_at) : ""),
      h("div.channel-row", {}, channels.map((c) => h(`span.channel-badge.ch-${channelType(c)}`, {}, channelName(c))))),
    section(t("contact_points"),
      h("ul.plain", {}, contactPoints(profile).map((p) =>
        h("li", {}, icon(p.kind === "email" ? "mail" : "user", 13), h("bdi", { dir: "ltr" }, p.value))))),
    section(t("identities"),
      h("ul.plain", {}, (profile.identities || []).map((i) =>
        h("li.identity", {}, h(`span.channel-badge.sm.ch-${channelType(i.channel)}`, {}, channelName(i.channel)),
          h("div.id-text", {}, h("bdi", { dir: "auto" }, i.name || i.external_id),
            i.name ? h("small.muted", { dir: "ltr" }, i.external_id) : null))))),
    section(t("responsible"), h("p", {}, h("bdi", {}, owner ? owner.name : t("nobody")))),
    profile.csat ? section(t("csat_title"), csatSummary(profile.csat)) : null,
    section(t("labels"), customerLabels(profile)),
    section(t("attributes"), ...attributesEditor(profile)),
    section(`${t("past_conversations")} (${num((profile.conversations || []).length)})`,
      h("ul.past", {}, (profile.conversations || []).map((c) =>
        h(`li${c.id === state.currentId ? ".current" : ""}`, {},
          h("button.past-item", { onclick: () => emit("open-conversation", c.id), title: fullTime(c.last_activity_at) },
            h(`span.channel-badge.sm.ch-${channelType(c.channel)}`, {}, channelName(c.channel)),
            h("span.past-subject", { dir: "auto" }, c.subject || `#${num(c.id)}`),
            h(`span.status.sm.st-${c.status}`, {}, t(`st_${c.status}`)),
            h("time.muted.small", {}, shortTime(c.last_activity_at))))))),
    section("", mergeForm(profile)),
  );
}
