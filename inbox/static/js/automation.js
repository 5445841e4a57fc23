// The admin tab "Automation": rules per trigger in the order they run (enable, move, edit,
// delete), an editor that builds conditions and actions row by row, and the audit of changes.

import * as api from "./api.js";
import { h, replace, toast } from "./dom.js";
import { addStrings, channelName, fullTime, locale, num, t } from "./i18n.js";
import { emit } from "./state.js";

addStrings({
  fa: {
    au_tab: "خودکارسازی", au_new: "قانون تازه", au_edit_title: "ویرایش قانون", au_name: "نام قانون",
    au_trigger: "وقتی", au_conditions: "اگر همهٔ این شرط‌ها برقرار باشد", au_actions: "آنگاه این کارها به ترتیب",
    au_add_condition: "+ شرط", au_add_action: "+ کار", au_save: "ذخیره", au_cancel: "انصراف",
    au_enabled: "فعال", au_up: "بالاتر", au_down: "پایین‌تر", au_edit: "ویرایش", au_delete: "حذف",
    au_delete_confirm: "قانون «{name}» حذف شود؟", au_none: "قانونی برای این رویداد نیست.",
    au_saved: "قانون ذخیره شد", au_deleted: "قانون حذف شد", au_no_conditions: "همیشه",
    au_help: "قانون‌های هر رویداد به ترتیب از بالا اجرا می‌شوند. کاری که یک قانون می‌کند قانون دیگری را به راه نمی‌اندازد.",
    au_audit: "تاریخچهٔ تغییرات", au_audit_none: "هنوز تغییری نیست.", au_who: "چه کسی", au_when: "کی", au_what: "چه تغییری",
    au_change_created: "ساخت", au_change_updated: "ویرایش", au_change_deleted: "حذف", au_change_reordered: "جابه‌جایی",
    au_remove_row: "برداشتن",
    "au_t_message.created": "پیام مشتری می‌رسد", "au_t_conversation.created": "گفتگوی تازه باز می‌شود",
    "au_t_conversation.status_changed": "وضعیت گفتگو عوض می‌شود", "au_t_sla.warning": "مهلت SLA نزدیک است",
    au_c_channel: "کانال یکی از", au_c_text: "متن شامل یکی از واژه‌ها", au_c_labels: "برچسب‌های گفتگو",
    au_c_customer_labels: "برچسب‌های مشتری", au_c_attribute: "ویژگی مشتری", au_c_priority: "اولویت یکی از",
    au_c_status: "وضعیت یکی از", au_c_status_from: "وضعیت قبلی", au_c_status_to: "وضعیت تازه",
    au_c_team: "تیم یکی از", au_c_business_hours: "ساعت کاری", au_c_sla_metric: "معیار SLA",
    au_a_assign_team: "واگذاری به تیم", au_a_assign_agent: "واگذاری به کارشناس", au_a_assign_team_lead: "واگذاری به سرپرست تیم",
    au_a_add_labels: "افزودن برچسب", au_a_remove_labels: "برداشتن برچسب", au_a_set_priority: "تعیین اولویت",
    au_a_canned_reply: "فرستادن پاسخ آماده", au_a_snooze: "تعویق", au_a_resolve: "بستن گفتگو", au_a_notify: "اعلان",
    au_include: "دارد یکی از", au_exclude: "ندارد هیچ‌کدام از", au_equals: "برابر است با", au_contains: "شامل",
    au_key: "کلید", au_value: "مقدار", au_words: "واژه‌ها، جدا با ویرگول", au_minutes: "دقیقه",
    au_open: "در ساعت کاری", au_closed: "بیرون از ساعت کاری", au_to_agent: "یک کارشناس", au_to_assignee: "کارشناس مسئول",
    au_to_team_leads: "سرپرست‌های تیم", au_notify_text: "متن اعلان (اختیاری)",
    au_notification: "اعلان قانون خودکار", au_priority: "اولویت", au_p_low: "کم", au_p_normal: "عادی", au_p_high: "زیاد", au_p_urgent: "فوری",
    au_s_open: "باز", au_s_pending: "در انتظار", au_s_snoozed: "معوق", au_s_resolved: "بسته", au_s_bot: "با ربات",
    au_m_first_response: "اولین پاسخ", au_m_next_response: "پاسخ بعدی", au_m_resolution: "حل",
  },
  en: {
    au_tab: "Automation", au_new: "New rule", au_edit_title: "Edit rule", au_name: "Rule name",
    au_trigger: "When", au_conditions: "If all of these hold", au_actions: "Then do these, in order",
    au_add_condition: "+ Condition", au_add_action: "+ Action", au_save: "Save", au_cancel: "Cancel",
    au_enabled: "Enabled", au_up: "Up", au_down: "Down", au_edit: "Edit", au_delete: "Delete",
    au_delete_confirm: "Delete the rule “{name}”?", au_none: "No rules for this trigger.",
    au_saved: "Rule saved", au_deleted: "Rule deleted", au_no_conditions: "always",
    au_help: "Each trigger's rules run from the top. What a rule does never triggers another rule.",
    au_audit: "Change history", au_audit_none: "No changes yet.", au_who: "Who", au_when: "When", au_what: "What changed",
    au_change_created: "created", au_change_updated: "edited", au_change_deleted: "deleted", au_change_reordered: "reordered",
    au_remove_row: "Remove",
    "au_t_message.created": "A customer's message arrives", "au_t_conversation.created": "A conversation is created",
    "au_t_conversation.status_changed": "A conversation's status changes", "au_t_sla.warning": "An SLA deadline is near",
    au_c_channel: "Channel is one of", au_c_text: "Text contains any of", au_c_labels: "Conversation labels",
    au_c_customer_labels: "Customer labels", au_c_attribute: "Customer attribute", au_c_priority: "Priority is one of",
    au_c_status: "Status is one of", au_c_status_from: "Status was", au_c_status_to: "Status becomes",
    au_c_team: "Team is one of", au_c_business_hours: "Business hours", au_c_sla_metric: "SLA metric",
    au_a_assign_team: "Assign to team", au_a_assign_agent: "Assign to agent", au_a_assign_team_lead: "Assign to team lead",
    au_a_add_labels: "Add labels", au_a_remove_labels: "Remove labels", au_a_set_priority: "Set priority",
    au_a_canned_reply: "Send canned reply", au_a_snooze: "Snooze", au_a_resolve: "Resolve", au_a_notify: "Notify",
    au_include: "has any of", au_exclude: "has none of", au_equals: "equals", au_contains: "contains",
    au_key: "Key", au_value: "Value", au_words: "Words, comma separated", au_minutes: "minutes",
    au_open: "within business hours", au_closed: "outside business hours", au_to_agent: "an agent", au_to_assignee: "the assignee",
    au_to_team_leads: "the team leads", au_notify_text: "Notification text (optional)",
    au_notification: "Automation rule", au_priority: "Priority", au_p_low: "low", au_p_normal: "normal", au_p_high: "high", au_p_urgent: "urgent",
    au_s_open: "open", au_s_pending: "pending", au_s_snoozed: "snoozed", au_s_resolved: "resolved", au_s_bot: "with the bot",
    au_m_first_response: "first response", au_m_next_response: "next response", au_m_resolution: "resolution",
  },
});

const TRIGGERS = ["message.created", "conversation.created", "conversation.status_changed", "sla.warning"];
const CONDITIONS = ["channel", "text", "labels", "customer_labels", "attribute", "priority", "status",
  "status_from", "status_to", "team", "business_hours", "sla_metric"];
const ONLY_FOR = {
  text: ["message.created", "conversation.created"],
  status_from: ["conversation.status_changed"],
  status_to: ["conversation.status_changed"],
  sla_metric: ["sla.warning"],
};
const ACTIONS = ["assign_team", "assign_agent", "assign_team_lead", "add_labels", "remove_labels",
  "set_priority", "canned_reply", "snooze", "resolve", "notify"];
const PRIORITIES = ["low", "normal", "high", "urgent"];
const STATUSES = ["open", "pending", "snoozed", "resolved", "bot"];
const METRICS = ["first_response", "next_response", "resolution"];

function fail(error) {
  toast(t("failed", { error: error.message }), "error");
}

const arrow = () => (locale() === "fa" ? " ← " : " → ");
const words = (value) => value.split(/[,،\n]/).map((x) => x.trim()).filter(Boolean);

/** A select; `multiple` ones read as arrays. `options`: [value, label] pairs. */
function picker(name, options, chosen, { multiple = false } = {}) {
  const wanted = new Set((Array.isArray(chosen) ? chosen : [chosen]).map(String));
  return h(`select.select.sm${multiple ? ".multi" : ""}`, { name, multiple, "aria-label": name, size: multiple ? Math.min(4, options.length || 1) : undefined },
    options.map(([value, label]) => h("option", { value, selected: wanted.has(String(value)) }, label)));
}

function picked(select) {
  return [...select.selectedOptions].map((o) => o.value);
}

function input(name, value, attrs = {}) {
  return h("input.input.sm", { name, value: value ?? "", dir: "auto", "aria-label": attrs.label || name, ...attrs, label: undefined });
}

/** The inputs of one condition or action type, and how to read them back into its dict. */
function fields(kind, type, value, ctx) {
  const teams = ctx.teams.map((x) => [x.id, x.name]);
  const agents = ctx.agents.filter((a) => a.active !== false).map((a) => [a.id, a.name || a.email]);
  const labels = ctx.labels.map((l) => [l.name, l.name]);
  const some = (list, prefix) => list.map((x) => [x, t(`${prefix}${x}`)]);
  const ids = (select) => picked(select).map(Number);
  if (kind === "condition") {
    switch (type) {
      case "channel": {
        const s = picker("values", ctx.channels.map((c) => [c, channelName(c)]), value.values || [], { multiple: true });
        return [[s], () => ({ values: picked(s) })];
      }
      case "text": {
        const i = input("words", (value.words || []).join("، "), { placeholder: t("au_words"), label: t("au_words") });
        return [[i], () => ({ words: words(i.value) })];
      }
      case "labels":
      case "customer_labels": {
        const mode = picker("mode", [["include", t("au_include")], ["exclude", t("au_exclude")]], value.exclude?.length ? "exclude" : "include");
        const s = picker("labels", labels, value.include?.length ? value.include : value.exclude || [], { multiple: true });
        return [[mode, s], () => ({ [mode.value]: picked(s) })];
      }
      case "attribute": {
        const key = input("key", value.key, { placeholder: t("au_key"), label: t("au_key") });
        const op = picker("op", [["equals", t("au_equals")], ["contains", t("au_contains")]], value.op || "equals");
        const val = input("value", value.value, { placeholder: t("au_value"), label: t("au_value") });
        return [[key, op, val], () => ({ key: key.value.trim(), op: op.value, value: val.value })];
      }
      case "priority": {
        const s = picker("values", some(PRIORITIES, "au_p_"), value.values || [], { multiple: true });
        return [[s], () => ({ values: picked(s) })];
      }
      case "status":
      case "status_from":
      case "status_to": {
        const s = picker("values", some(STATUSES, "au_s_"), value.values || [], { multiple: true });
        return [[s], () => ({ values: picked(s) })];
      }
      case "team": {
        const s = picker("team_ids", teams, value.team_ids || [], { multiple: true });
        return [[s], () => ({ team_ids: ids(s) })];
      }
      case "business_hours": {
        const s = picker("open", [["true", t("au_open")], ["false", t("au_closed")]], String(value.open ?? true));
        return [[s], () => ({ open: s.value === "true" })];
      }
      case "sla_metric": {
        const s = picker("values", some(METRICS, "au_m_"), value.values || [], { multiple: true });
        return [[s], () => ({ values: picked(s) })];
      }
    }
  }
  switch (type) {
    case "assign_team": {
      const s = picker("team_id", teams, value.team_id);
      return [[s], () => ({ team_id: Number(s.value) })];
    }
    case "assign_agent": {
      const s = picker("agent_id", agents, value.agent_id);
      return [[s], () => ({ agent_id: Number(s.value) })];
    }
    case "add_labels":
    case "remove_labels": {
      const s = picker("labels", labels, value.labels || [], { multiple: true });
      return [[s], () => ({ labels: picked(s) })];
    }
    case "set_priority": {
      const s = picker("priority", some(PRIORITIES, "au_p_"), value.priority || "high");
      return [[s], () => ({ priority: s.value })];
    }
    case "canned_reply": {
      const s = picker("shortcut", ctx.canned.map((c) => [c.shortcut, `/${c.shortcut} ${c.title || ""}`.trim()]), value.shortcut);
      return [[s], () => ({ shortcut: s.value })];
    }
    case "snooze": {
      const i = h("input.input.sm.num", { type: "number", name: "minutes", min: 1, value: value.minutes ?? 60, "aria-label": t("au_minutes") });
      return [[i, h("span.small.muted", {}, t("au_minutes"))], () => ({ minutes: Number(i.value) })];
    }
    case "notify": {
      const to = picker("to", [["assignee", t("au_to_assignee")], ["team_leads", t("au_to_team_leads")], ["agent", t("au_to_agent")]], value.to || "assignee");
      const agent = picker("agent_id", agents, value.agent_id);
      const text = input("text", value.text, { placeholder: t("au_notify_text"), label: t("au_notify_text"), maxlength: 500 });
      const show = () => { agent.hidden = to.value !== "agent"; };
      to.addEventListener("change", show);
      show();
      return [[to, agent, text], () => ({ to: to.value, ...(to.value === "agent" ? { agent_id: Number(agent.value) } : {}), text: text.value })];
    }
  }
  return [[], () => ({})];
}

/** One editable condition or action: its type select and the inputs that type needs. */
function row(kind, value, ctx, trigger, onRemove) {
  const types = kind === "condition" ? CONDITIONS.filter((c) => !ONLY_FOR[c] || ONLY_FOR[c].includes(trigger())) : ACTIONS;
  const type = picker("type", types.map((x) => [x, t(`au_${kind[0]}_${x}`)]), value.type || types[0]);
  const slot = h("span.au-fields");
  let read = () => ({});
  const build = (v) => {
    const [nodes, reader] = fields(kind, type.value, v, ctx);
    replace(slot, nodes);
    read = reader;
  };
  type.addEventListener("change", () => build({}));
  build(value);
  const node = h(`div.inline-form.au-row.au-${kind}`, {}, type, slot,
    h("button.btn.xs.danger-ghost", { type: "button", onclick: () => { node.remove(); onRemove(node); }, "aria-label": t("au_remove_row") }, "×"));
  return { node, read: () => ({ type: type.value, ...read() }) };
}

/** The editor card for a new rule (`rule` null) or an existing one. */
function editor(rule, ctx, onDone) {
  const name = input("name", rule?.name, { placeholder: t("au_name"), label: t("au_name"), maxlength: 200, required: true });
  const trigger = picker("trigger", TRIGGERS.map((x) => [x, t(`au_t_${x}`)]), rule?.trigger || TRIGGERS[0]);
  const enabled = h("input", { type: "checkbox", name: "enabled", checked: rule ? rule.enabled : true });
  const lists = { condition: [], action: [] };
  const boxes = { condition: h("div.au-list.au-conditions"), action: h("div.au-list.au-actions") };
  const add = (kind, value = {}) => {
    const made = row(kind, value, ctx, () => trigger.value, (node) => {
      lists[kind] = lists[kind].filter((r) => r.node !== node);
    });
    lists[kind].push(made);
    boxes[kind].appendChild(made.node);
  };
  (rule?.conditions || []).forEach((c) => add("condition", c));
  (rule?.actions || [{ type: "add_labels" }]).forEach((a) => add("action", a));
  trigger.addEventListener("change", () => {
    // Conditions that only some triggers know go when the trigger changes.
    for (const r of [...lists.condition]) {
      const type = r.read().type;
      if (ONLY_FOR[type] && !ONLY_FOR[type].includes(trigger.value)) { r.node.remove(); lists.condition = lists.condition.filter((x) => x !== r); }
    }
  });
  const form = h("form.card.au-editor", {},
    h("h3", {}, rule ? t("au_edit_title") : t("au_new")),
    h("div.inline-form", {}, name, h("label.small", {}, t("au_trigger"), " ", trigger), h("label.small.check", {}, enabled, " ", t("au_enabled"))),
    h("h4", {}, t("au_conditions")), boxes.condition,
    h("button.btn.xs", { type: "button", "data-action": "au-add-condition", onclick: () => add("condition") }, t("au_add_condition")),
    h("h4", {}, t("au_actions")), boxes.action,
    h("button.btn.xs", { type: "button", "data-action": "au-add-action", onclick: () => add("action") }, t("au_add_action")),
    h("div.inline-form", {},
      h("button.btn.primary.sm", { type: "submit", "data-action": "au-save" }, t("au_save")),
      h("button.btn.sm", { type: "button", onclick: () => onDone(false) }, t("au_cancel"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      name: name.value.trim(),
      trigger: trigger.value,
      enabled: enabled.checked,
      conditions: lists.condition.map((r) => r.read()),
      actions: lists.action.map((r) => r.read()),
    };
    try {
      if (rule) await api.patch(`/automation/rules/${rule.id}`, body);
      else await api.post("/automation/rules", body);
      toast(t("au_saved"), "success");
      onDone(true);
    } catch (error) {
      fail(error);
    }
  });
  return form;
}

function summary(rule) {
  const conditions = rule.conditions.map((c) => t(`au_c_${c.type}`));
  const actions = rule.actions.map((a) => t(`au_a_${a.type}`));
  return h("div.small", {},
    h("span.muted", {}, (conditions.length ? conditions.join("، ") : t("au_no_conditions")) + arrow()),
    actions.join("، "));
}

function auditList(rows, names) {
  if (!rows.length) return h("p.muted.empty-row", {}, t("au_audit_none"));
  const changed = (a) => {
    if (a.change === "reordered") return (a.after?.ids || []).map((id) => names.get(id) || `#${num(id)}`).join(arrow());
    if (a.change !== "updated") return (a.after || a.before)?.name || "";
    const keys = ["name", "trigger", "enabled", "conditions", "actions", "position"]
      .filter((k) => JSON.stringify(a.before?.[k]) !== JSON.stringify(a.after?.[k]));
    return `${a.after?.name || ""}: ${keys.join("، ")}`;
  };
  return h("table.table.au-audit", {},
    h("thead", {}, h("tr", {}, [t("au_when"), t("au_who"), t("au_what"), ""].map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((a) => h("tr", { dataset: { change: a.change } },
      h("td.nowrap", {}, fullTime(a.created_at)),
      h("td", { dir: "auto" }, a.agent ? a.agent.name || a.agent.email : "—"),
      h("td", {}, h("span.chip.sm", {}, t(`au_change_${a.change}`))),
      h("td", { dir: "auto" }, changed(a))))));
}

/** The admin tab. */
export async function automationTab(body, rerender) {
  const [data, { agents }, teams, labels, canned, audit] = await Promise.all([
    api.get("/automation/rules"), api.get("/agents"), api.get("/teams"), api.get("/labels"),
    api.get("/canned-responses"), api.get("/automation/audit?limit=50"),
  ]);
  const ctx = { agents, teams: teams.teams, labels: labels.labels, canned: canned.canned_responses, channels: data.channels };
  const slot = h("div.au-editor-slot");
  const open = (rule) => {
    replace(slot, editor(rule, ctx, (saved) => { if (saved) rerender(); else replace(slot); }));
    slot.querySelector("input")?.focus();
  };
  const run = async (promise) => {
    try { await promise; rerender(); } catch (error) { fail(error); }
  };
  const names = new Map(data.rules.map((r) => [r.id, r.name]));
  const sections = TRIGGERS.map((trigger) => {
    const rules = data.rules.filter((r) => r.trigger === trigger);
    const move = (index, by) => {
      const ids = rules.map((r) => r.id);
      [ids[index], ids[index + by]] = [ids[index + by], ids[index]];
      run(api.post("/automation/rules/order", { trigger, ids }));
    };
    const rows = rules.map((rule, index) => {
      const enabled = h("input", { type: "checkbox", checked: rule.enabled, "aria-label": t("au_enabled") });
      enabled.addEventListener("change", () => run(api.patch(`/automation/rules/${rule.id}`, { enabled: enabled.checked })));
      return h(`tr.au-rule${rule.enabled ? "" : ".inactive"}`, { dataset: { id: rule.id } },
        h("td", {}, num(index + 1)),
        h("td", {}, h("strong", { dir: "auto" }, rule.name), summary(rule)),
        h("td", {}, h("label.small.check", {}, enabled, " ", t("au_enabled"))),
        h("td.nowrap", {},
          h("button.btn.xs", { type: "button", disabled: index === 0, title: t("au_up"), "aria-label": t("au_up"), onclick: () => move(index, -1) }, "↑"),
          h("button.btn.xs", { type: "button", disabled: index === rules.length - 1, title: t("au_down"), "aria-label": t("au_down"), onclick: () => move(index, 1) }, "↓"),
          h("button.btn.xs", { type: "button", "data-action": "au-edit", onclick: () => open(rule) }, t("au_edit")),
          h("button.btn.xs.danger-ghost", { type: "button", "data-action": "au-delete", onclick: () => {
            if (confirm(t("au_delete_confirm", { name: rule.name }))) run(api.del(`/automation/rules/${rule.id}`));
          } }, t("au_delete"))));
    });
    return h("div.card.au-trigger", { dataset: { trigger } },
      h("h3", {}, t(`au_t_${trigger}`)),
      rows.length ? h("table.table", {}, h("tbody", {}, rows)) : h("p.muted.empty-row", {}, t("au_none")));
  });
  replace(body,
    h("div.card", {},
      h("button.btn.primary.sm", { type: "button", "data-action": "au-new", onclick: () => open(null) }, "+ " + t("au_new")),
      h("p.muted.small", {}, t("au_help"))),
    slot,
    sections,
    h("div.card", {}, h("h3", {}, t("au_audit")), auditList(audit.audit, names)));
}

/** The thread header's priority: any agent sets it (rules may set it too). */
export function priorityControl(detail) {
  const current = detail.priority || "normal";
  const node = h(`select.select.sm.priority-select.pr-${current}`, { "aria-label": t("au_priority"), "data-action": "priority" },
    PRIORITIES.map((p) => h("option", { value: p, selected: p === current }, `${t("au_priority")}: ${t(`au_p_${p}`)}`)));
  node.addEventListener("change", async () => {
    try {
      await api.patch(`/conversations/${detail.id}`, { priority: node.value });
      emit("refresh-thread");
      emit("refresh-list");
    } catch (error) {
      node.value = current;
      fail(error);
    }
  });
  return node;
}

/** For admin.js: the automation tab. */
export const AUTOMATION_TABS = [["automation", "au_tab", "gear", automationTab]];
