// The open conversation: header with actions, the thread, and the composer.

import * as api from "./api.js";
import { priorityControl } from "./automation.js";
import { avatar, clear, h, icon, replace, toast } from "./dom.js";
import { csatCard } from "./csat.js";
import { botActivityText, botBanner, botDetails, faqOffer } from "./faq.js";
import { channelName, channelType, fullTime, num, relative, shortTime, t } from "./i18n.js";
import { slaActivityText, slaBadge } from "./sla.js";
import { agentName, emit, state, teamName } from "./state.js";

const QUOTE_HEADER = /^(On .{3,200} wrote:|.{3,200} نوشت:|-----\s*Original Message\s*-----|From: .+)$/i;

/** Split plain text into what was written and the quoted tail (a reply's "> ..." lines). */
export function splitQuoted(text) {
  const lines = String(text || "").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!(line.startsWith(">") || QUOTE_HEADER.test(line))) continue;
    const rest = lines.slice(i + 1).filter((l) => l.trim());
    if (rest.every((l) => l.trim().startsWith(">")) && (rest.length || line.startsWith(">"))) {
      if (i === 0) return { own: text, quoted: "" };
      return { own: lines.slice(0, i).join("\n").trimEnd(), quoted: lines.slice(i).join("\n") };
    }
  }
  return { own: text, quoted: "" };
}

/** Sanitized email HTML from the API, without its quoted part (parsed inertly, never run). */
function splitQuotedHtml(html) {
  const doc = new DOMParser().parseFromString(html, "text/html");
  const quotes = doc.querySelectorAll("blockquote, .gmail_quote, .yahoo_quoted, #appendonsend");
  quotes.forEach((q) => q.remove());
  return { own: doc.body ? doc.body.innerHTML : "", folded: quotes.length > 0 };
}

function emailFrame(html) {
  const text = html.replace(/<[^>]*>/g, " ");
  const blocks = (html.match(/<(p|br|div|tr|li|h\d)\b/gi) || []).length;
  const height = Math.max(60, Math.min(520, 24 * (blocks + text.length / 90) + 24));
  const frame = h("iframe.email-frame", { sandbox: "", title: "email", referrerpolicy: "no-referrer" });
  frame.srcdoc =
    '<!doctype html><meta charset="utf-8"><style>body{font:14px/1.7 system-ui,Vazirmatn,Tahoma,sans-serif;margin:0;color:#1f2937;word-wrap:break-word}img{max-width:100%}</style>' +
    html;
  frame.style.height = `${Math.round(height)}px`;
  return frame;
}

function safeUrl(url) {
  try {
    const parsed = new URL(url, location.href);
    return ["http:", "https:"].includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

function bytes(size) {
  if (!size && size !== 0) return "";
  if (size < 1024) return `${num(size)} B`;
  if (size < 1048576) return `${num(Math.round(size / 1024))} KB`;
  return `${num(Math.round(size / 104857.6) / 10)} MB`;
}

function bodyOf(message) {
  const wrap = h("div.msg-body");
  if (message.html) {
    const { own, folded } = splitQuotedHtml(message.html);
    let frame = emailFrame(folded ? own : message.html);
    wrap.appendChild(frame);
    if (folded) {
      const toggle = h("button.quote-toggle", { title: t("show_quoted"), "aria-expanded": "false" }, "…");
      let open = false;
      toggle.addEventListener("click", () => {
        open = !open;
        const next = emailFrame(open ? message.html : own);
        frame.replaceWith(next);
        frame = next;
        toggle.title = t(open ? "hide_quoted" : "show_quoted");
        toggle.setAttribute("aria-expanded", String(open));
      });
      wrap.appendChild(toggle);
    }
    return wrap;
  }
  const { own, quoted } = splitQuoted(message.text);
  wrap.appendChild(h("div.text", { dir: "auto" }, own));
  if (quoted) {
    const quote = h("div.text.quoted", { dir: "auto", hidden: true }, quoted);
    const toggle = h("button.quote-toggle", { title: t("show_quoted"), "aria-expanded": "false" }, "…");
    toggle.addEventListener("click", () => {
      quote.hidden = !quote.hidden;
      toggle.setAttribute("aria-expanded", String(!quote.hidden));
      toggle.title = t(quote.hidden ? "show_quoted" : "hide_quoted");
    });
    wrap.append(toggle, quote);
  }
  return wrap;
}

function attachmentsOf(message) {
  const files = message.attachments || [];
  if (!files.length) return null;
  return h(
    "div.attachments",
    {},
    files.map((file) => {
      const href = safeUrl(file.url);
      const label = [icon("paperclip", 14), h("span", { dir: "auto" }, file.name || "file"), h("small", {}, bytes(file.size))];
      return href
        ? h("a.attachment", { href, target: "_blank", rel: "noopener noreferrer", download: file.name || "" }, label)
        : h("span.attachment", {}, label);
    }),
  );
}

function deliveryOf(message) {
  const status = message.delivery_status;
  if (!status || message.private || message.direction !== "out") return null;
  const node = h(`div.delivery.ds-${status}`, { title: message.delivery_error || "" },
    icon(status === "failed" ? "retry" : "check", 12), t(`ds_${status}`));
  if (status === "failed") {
    if (message.delivery_error) node.appendChild(h("span.reason", { dir: "auto" }, message.delivery_error));
    node.appendChild(
      h("button.btn.xs.danger", {
        onclick: async (event) => {
          event.target.disabled = true;
          try {
            await api.post(`/messages/${message.id}/retry`);
            emit("refresh-thread");
          } catch (error) {
            toast(t("failed", { error: error.message }), "error");
            event.target.disabled = false;
          }
        },
      }, t("retry")),
    );
  }
  return node;
}

/** A sent template reads without the "[template: name]" its stored text starts with: the tag
 * in the message's head names it. */
function templateBody(message) {
  const name = message.metadata?.template?.name;
  const prefix = `[template: ${name}]`;
  if (!name || !String(message.text || "").startsWith(prefix)) return message;
  return { ...message, text: message.text.slice(prefix.length).trim() };
}

function authorName(message) {
  if (message.author && message.author.name) return message.author.name;
  if (message.author_kind === "agent") return agentName(message.author_agent_id);
  if (message.author_kind === "bot") return message.metadata?.bot?.name || t("bot");
  if (message.author_kind === "customer") return state.current?.customer?.name || t("customer");
  return t("system");
}

function messageNode(message, reactions = []) {
  const kind = message.private
    ? "note"
    : message.author_kind === "bot"
      ? "bot"
      : message.direction === "in" || message.author_kind === "customer"
        ? "in"
        : "out";
  if (message.author_kind === "system" && !message.private) {
    return h("div.activity", { dataset: { messageId: message.id } }, h("span", { dir: "auto" }, message.text));
  }
  const name = authorName(message);
  return h(
    `div.msg.msg-${kind}`,
    { dataset: { messageId: message.id } },
    kind === "bot" ? h("span.avatar.bot", {}, icon("bot", 16)) : avatar(name),
    h(
      "div.bubble",
      {},
      h(
        "div.msg-head",
        {},
        h("strong", { dir: "auto" }, name),
        kind === "note" ? h("span.tag.note-tag", {}, t("private_note")) : null,
        kind === "bot" ? h("span.tag.bot-tag", {}, t("bot")) : null,
        message.metadata?.edit_of || message.metadata?.edited ? h("span.tag.edited-tag", {}, t("edited")) : null,
        message.metadata?.followed_by_email ? h("span.tag.followed-tag", { title: t("followed_by_email_hint") }, t("followed_by_email")) : null,
        message.metadata?.template?.name ? h("span.tag.template-tag", { dir: "auto" }, t("template_tag", { name: message.metadata.template.name })) : null,
        message.subject && message.subject !== state.current?.subject
          ? h("span.msg-subject", { dir: "auto" }, message.subject)
          : null,
        h("time", { datetime: message.created_at, title: fullTime(message.created_at) }, shortTime(message.created_at)),
      ),
      bodyOf(templateBody(message)),
      kind === "bot" ? botDetails(message) : null,
      attachmentsOf(message),
      reactions.length ? h("div.reactions", {}, ...reactions.map((r) => h("span.reaction", { title: r.who }, r.emoji))) : null,
      deliveryOf(message),
    ),
  );
}

// A customer's reaction (WhatsApp, Messenger) is drawn on the message it reacts to, when that
// message is in the thread; otherwise it stays a line of its own.
function reactionsByTarget(messages) {
  const byKey = new Map();
  for (const m of messages) {
    if (m.external_id) byKey.set(m.external_id, m.id);
    if (m.provider_id) byKey.set(m.provider_id, m.id);
  }
  const reactions = new Map();
  const drawn = new Set();
  for (const m of messages) {
    const target = byKey.get(m.metadata?.reaction_to);
    if (target === undefined || !m.metadata?.reaction) continue;
    if (!reactions.has(target)) reactions.set(target, []);
    reactions.get(target).push({ emoji: m.metadata.reaction, who: authorName(m) });
    drawn.add(m.id);
  }
  return { reactions, drawn };
}

const STATUS_KEY = (status) => `st_${status}`;

function activityText(activity) {
  const actorName = activity.actor?.name || (activity.actor_agent_id ? agentName(activity.actor_agent_id) : "");
  const data = activity.data || {};
  const type = activity.type || "";
  const auto = !actorName;
  const bot = botActivityText(activity) || slaActivityText(activity);
  if (bot) return bot;
  if (type === "conversation.assigned") {
    const to = agentName(data.to ?? data.agent_id ?? data.assignee_id) || t("nobody");
    return auto ? t("act_assigned_auto", { to }) : t("act_assigned", { actor: actorName, to });
  }
  if (type === "conversation.unassigned") {
    return auto ? t("act_unassigned_auto") : t("act_unassigned", { actor: actorName });
  }
  if (type === "conversation.team_changed") {
    return t("act_team", { actor: actorName || t("someone"), to: teamName(data.to) || t("nobody") });
  }
  if (type === "conversation.status" || type === "conversation.status_changed") {
    const to = t(STATUS_KEY(data.to ?? data.status));
    return auto ? t("act_status_auto", { to }) : t("act_status", { actor: actorName, to });
  }
  if (type === "conversation.labels" || type === "conversation.labels_changed") {
    return t("act_labels", { actor: actorName || t("someone") });
  }
  if (type === "conversation.created" || type === "conversation.opened") return t("act_created");
  if (type === "conversation.reopened") return t("act_reopened");
  return null;
}

function isMessageEvent(type) {
  return type.startsWith("message.") || type.startsWith("note.");
}

/** Activities from the detail (contract) or from the conversation's event log (older servers). */
async function loadActivities(detail) {
  if (Array.isArray(detail.activities)) return detail.activities;
  try {
    const data = await api.get(`/conversations/${detail.id}/events`);
    return (data.events || []).filter((e) => !isMessageEvent(e.type));
  } catch {
    return [];
  }
}

export async function loadConversation(id) {
  const detail = await api.get(`/conversations/${id}`);
  detail.activities = await loadActivities(detail);
  return detail;
}

// ---------------------------------------------------------------- header and actions

async function assignTo(body) {
  const id = state.currentId;
  try {
    await api.write(["PUT", "POST"], `/conversations/${id}/assignment`, body);
    emit("refresh-thread");
    emit("refresh-list");
  } catch (error) {
    toast(t("failed", { error: error.message }), "error");
  }
}

export async function assignToMe() {
  if (!state.current) return;
  await assignTo({ agent_id: state.me.id });
}

export async function setStatus(status, snoozedUntil = null) {
  if (!state.current) return;
  const body = { status };
  if (status === "snoozed") body.snoozed_until = snoozedUntil;
  try {
    await api.put(`/conversations/${state.currentId}/status`, body);
    emit("refresh-thread");
    emit("refresh-list");
  } catch (error) {
    toast(t("failed", { error: error.message }), "error");
  }
}

async function changeLabels(add, remove) {
  try {
    await api.write(["PUT", "POST"], `/conversations/${state.currentId}/labels`, { add, remove });
    emit("refresh-thread");
    emit("refresh-list");
  } catch (error) {
    toast(t("failed", { error: error.message }), "error");
  }
}

function select(label, options, onchange, { value = "", className = "" } = {}) {
  const node = h(`select.select${className ? "." + className : ""}`, { "aria-label": label },
    h("option", { value: "" }, label),
    options.map(([v, text]) => h("option", { value: String(v), selected: String(v) === String(value) }, text)));
  node.addEventListener("change", () => {
    const chosen = node.value;
    node.value = String(value);
    if (chosen !== "") onchange(chosen);
  });
  return node;
}

function snoozeMenu(anchor) {
  document.querySelectorAll(".popover").forEach((p) => p.remove());
  const at = (date) => setStatus("snoozed", date.toISOString()).then(() => pop.remove());
  const inHour = () => new Date(Date.now() + 3600_000);
  const tomorrow = () => { const d = new Date(); d.setDate(d.getDate() + 1); d.setHours(9, 0, 0, 0); return d; };
  const week = () => { const d = new Date(); d.setDate(d.getDate() + 7); d.setHours(9, 0, 0, 0); return d; };
  const local = h("input.input", { type: "datetime-local", "aria-label": t("snooze_until") });
  const start = tomorrow();
  local.value = new Date(start.getTime() - start.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  const pop = h(
    "div.popover.snooze-pop",
    { role: "dialog" },
    h("div.pop-title", {}, t("snooze_until")),
    h("button.menu-item", { onclick: () => at(inHour()) }, t("snooze_1h"), h("small", {}, relative(inHour().toISOString()))),
    h("button.menu-item", { onclick: () => at(tomorrow()) }, t("snooze_tomorrow"), h("small", {}, fullTime(tomorrow().toISOString()))),
    h("button.menu-item", { onclick: () => at(week()) }, t("snooze_week"), h("small", {}, fullTime(week().toISOString()))),
    h("div.pop-row", {}, local,
      h("button.btn.primary.sm", { onclick: () => local.value && at(new Date(local.value)) }, t("apply"))),
  );
  const rect = anchor.getBoundingClientRect();
  pop.style.top = `${rect.bottom + 6}px`;
  pop.style.left = `${Math.max(8, Math.min(rect.left, innerWidth - 300))}px`;
  document.body.appendChild(pop);
  setTimeout(() => {
    const close = (event) => {
      if (!pop.contains(event.target)) { pop.remove(); document.removeEventListener("mousedown", close); }
    };
    document.addEventListener("mousedown", close);
  });
}

function labelEditor(labels) {
  const chips = labels.map((name) =>
    h("span.chip", { dir: "auto" }, name,
      h("button.chip-x", { title: t("remove"), "aria-label": `${t("remove")} ${name}`, onclick: () => changeLabels([], [name]) }, "×")));
  const input = h("input.input.label-input", { list: "label-options", placeholder: t("add_label"), "aria-label": t("add_label"), dir: "auto" });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && input.value.trim()) {
      event.preventDefault();
      changeLabels([input.value.trim()], []);
    }
  });
  input.addEventListener("change", () => {
    if (state.labels.some((l) => l.name === input.value)) changeLabels([input.value], []);
  });
  const options = h("datalist", { id: "label-options" },
    state.labels.filter((l) => !labels.includes(l.name)).map((l) => h("option", { value: l.name })));
  return h("div.labels-row", {}, icon("tag", 14), chips, input, options);
}

function header(detail) {
  const assignee = detail.assignee?.name || agentName(detail.assignee_id);
  const mine = detail.assignee_id === state.me.id;
  const resolved = detail.status === "resolved";
  const statusActions = h("div.btn-group", {},
    resolved
      ? h("button.btn.sm", { onclick: () => setStatus("open"), "data-action": "reopen" }, t("reopen"))
      : h("button.btn.sm.success", { onclick: () => setStatus("resolved"), "data-action": "resolve" }, icon("check", 14), t("resolve")),
    detail.status !== "pending" && !resolved
      ? h("button.btn.sm", { onclick: () => setStatus("pending"), "data-action": "pending" }, t("pending"))
      : null,
    detail.status !== "open" && !resolved
      ? h("button.btn.sm", { onclick: () => setStatus("open"), "data-action": "open" }, t("reopen"))
      : null,
    h("button.btn.sm", { onclick: (event) => snoozeMenu(event.currentTarget), "data-action": "snooze" }, icon("clock", 14), t("snooze")),
  );
  const agents = state.agents.filter((a) => a.active !== false);
  return h(
    "header.thread-head",
    {},
    h("div.thread-title", {},
      h("div.title-line", {},
        h("h2", { dir: "auto" }, detail.subject || detail.customer?.name || t("no_subject")),
        h(`span.status.st-${detail.status}`, {}, t(STATUS_KEY(detail.status))),
        slaBadge(detail.sla),
        detail.status === "snoozed" && detail.snoozed_until
          ? h("span.muted.small", { title: fullTime(detail.snoozed_until) }, relative(detail.snoozed_until))
          : null),
      h("div.meta-line", {},
        h(`span.channel-badge.ch-${channelType(detail.channel)}`, {}, channelName(detail.channel)),
        h("span.muted", { dir: "auto" }, detail.customer?.name || ""),
        h("span.sep", {}, "·"),
        h("span.assignee", {}, icon("user", 13), h("span", { dir: "auto" }, assignee || t("unassigned"))),
        detail.team_id ? [h("span.sep", {}, "·"), h("span.muted", { dir: "auto" }, teamName(detail.team_id))] : null,
        h("span.sep", {}, "·"),
        h("span.muted", {}, `#${num(detail.id)}`))),
    h("div.thread-actions", {},
      priorityControl(detail),
      mine ? null : h("button.btn.sm.primary", { onclick: assignToMe, "data-action": "assign-me" }, icon("user", 14), t("assign_me")),
      select(t("assign_to"), agents.filter((a) => a.id !== detail.assignee_id).map((a) => [a.id, a.name || a.email]),
        (id) => assignTo({ agent_id: Number(id) }), { className: "assign-select" }),
      state.teams.length
        ? select(t("transfer_team"), state.teams.map((tm) => [tm.id, tm.name]),
          (id) => assignTo({ agent_id: null, team_id: Number(id), set_team: true }), { className: "team-select" })
        : null,
      statusActions),
    botBanner(detail),
    labelEditor(detail.labels || []),
  );
}

// ---------------------------------------------------------------- composer

let composer = null;

function mentionCandidates(query) {
  const q = query.toLowerCase();
  return state.agents
    .filter((a) => a.active !== false && a.id !== state.me.id)
    .filter((a) => (a.name || "").toLowerCase().includes(q) || (a.email || "").toLowerCase().startsWith(q))
    .slice(0, 6)
    .map((a) => ({ label: a.name || a.email, hint: a.email, insert: `@${(a.name || a.email).trim()} `, agentId: a.id }));
}

function cannedCandidates(query) {
  const q = query.toLowerCase();
  return state.canned
    .filter((c) => c.shortcut.toLowerCase().startsWith(q) || (c.title || "").toLowerCase().includes(q))
    .slice(0, 6)
    .map((c) => ({ label: `/${c.shortcut}`, hint: c.title || c.text.slice(0, 60), insert: c.text }));
}

// ---- files attached in the composer: uploaded at once, sent by id with the reply

function uploadError(error, name) {
  if (error.status === 413) return t("file_too_large", { name });
  if (error.status === 415) return t("file_type_refused", { name });
  if (error.status === 422 && /empty/.test(error.message)) return t("file_empty", { name });
  return t("upload_failed", { name, error: error.message });
}

/** The composer's attachments: chips with name, size, progress, errors and remove. */
function attachmentTray(conversationId) {
  const list = h("div.composer-files", { hidden: true, "aria-live": "polite" });
  const files = [];
  const render = () => {
    replace(list, files.map((f) => {
      f.bar = f.status === "uploading" ? h("i") : null;
      if (f.bar) f.bar.style.width = `${Math.round(f.progress * 100)}%`;
      return h(`div.file-chip.fc-${f.status}`, { title: f.error || f.name, dataset: { status: f.status } },
        icon("paperclip", 13),
        h("span.file-name", { dir: "auto" }, f.name),
        h("small.file-size", { dir: "auto" }, f.status === "error" ? f.error : f.status === "uploading" ? t("uploading") : bytes(f.size)),
        f.bar ? h("span.file-progress", { role: "progressbar" }, f.bar) : null,
        h("button.chip-x", { type: "button", title: t("remove_file"), "aria-label": `${t("remove_file")} ${f.name}`, onclick: () => remove(f) }, "×"));
    }));
    list.hidden = files.length === 0;
  };
  const remove = (f) => {
    const index = files.indexOf(f);
    if (index >= 0) files.splice(index, 1);
    f.removed = true;
    if (f.upload) api.del(`/attachments/${f.upload.id}`).catch(() => {});
    render();
  };
  const add = (picked) => {
    for (const file of picked) {
      const f = { name: file.name || "file", size: file.size, status: "uploading", progress: 0, error: "", upload: null, removed: false };
      files.push(f);
      api.upload(`/conversations/${conversationId}/attachments`, [file], (fraction) => {
        f.progress = fraction;
        if (f.bar) f.bar.style.width = `${Math.round(fraction * 100)}%`;
      }).then((answer) => {
        f.upload = answer.attachments[0];
        f.status = "ready";
        if (f.removed) api.del(`/attachments/${f.upload.id}`).catch(() => {});
        render();
      }).catch((error) => {
        f.status = "error";
        f.error = uploadError(error, f.name);
        if (!f.removed) toast(f.error, "error");
        render();
      });
    }
    render();
  };
  return {
    node: list,
    add,
    busy: () => files.some((f) => f.status === "uploading"),
    ids: () => files.filter((f) => f.status === "ready").map((f) => f.upload.id),
    clear: () => { files.splice(0, files.length); render(); },
  };
}

// ---- the reply window (WhatsApp, Messenger): a countdown while open; templates once closed

const HOUR = 3600_000;

/** "3 h 12 min" (or "۳ ساعت و ۱۲ دقیقه") until `ms` runs out. */
function duration(ms) {
  const minutes = Math.max(0, Math.floor(ms / 60000));
  if (minutes < 1) return t("duration_lt_min");
  const hours = Math.floor(minutes / 60);
  if (!hours) return t("duration_m", { m: num(minutes) });
  return t("duration_hm", { h: num(hours), m: num(minutes % 60) });
}

/** Whether free text may go out now: the server's answer, overtaken by the clock at closes_at. */
function windowOpen(rw) {
  if (!rw) return true;
  if (!rw.closes_at) return rw.open !== false;
  return rw.open !== false && Date.parse(rw.closes_at) > Date.now();
}

/** A template's text with the values typed so far in place of {{1}}, {{2}}, ... */
function filled(text, values) {
  return String(text || "").replace(/\{\{\s*(\d+)\s*\}\}/g, (whole, n) => values[Number(n) - 1] || whole);
}

/** The picker shown instead of the text box once the window closed: a template, its
 * parameters, a preview, and send. Loads the channel's templates when first shown. */
function templatePicker(self) {
  const node = h("div.template-picker");
  let loaded = null;
  const render = (templates) => {
    if (!templates.length) {
      replace(node, h("p.muted.small.no-templates", {}, t("no_templates")));
      return;
    }
    const chooser = h("select.select.template-select", { "aria-label": t("choose_template") },
      h("option", { value: "" }, t("choose_template")),
      templates.map((tp, i) => h("option", { value: String(i) }, `${tp.name} (${tp.language})`)));
    const fields = h("div.template-fields");
    const preview = h("div.template-preview", { dir: "auto", hidden: true });
    const sendTemplate = h("button.btn.primary.send-template", { type: "button", disabled: true }, icon("send", 14), t("send_template"));
    let inputs = [];
    let chosen = null;
    const refresh = () => {
      const values = inputs.map((input) => input.value.trim());
      preview.hidden = !chosen;
      if (chosen) preview.textContent = chosen.text ? filled(chosen.text, values) : [chosen.name, ...values].join(" · ");
      sendTemplate.disabled = !chosen || values.some((v) => !v);
    };
    chooser.addEventListener("change", () => {
      chosen = chooser.value === "" ? null : templates[Number(chooser.value)];
      inputs = (chosen?.parameters || []).map((name, i) =>
        h("input.input.template-param", { dir: "auto", placeholder: name || `{{${i + 1}}}`, "aria-label": name || `{{${i + 1}}}`, dataset: { index: String(i) } }));
      inputs.forEach((input) => input.addEventListener("input", refresh));
      replace(fields, inputs.map((input, i) => h("label.template-field", {}, h("span.muted.small", { dir: "auto" }, chosen.parameters[i]), input)));
      refresh();
      (inputs[0] || sendTemplate).focus();
    });
    sendTemplate.addEventListener("click", async () => {
      if (!chosen) return;
      sendTemplate.disabled = true;
      try {
        await api.post(`/conversations/${self.conversationId}/templates`, {
          name: chosen.name,
          parameters: inputs.map((input) => input.value.trim()),
        });
        toast(t("template_sent"), "success");
        chooser.value = "";
        chooser.dispatchEvent(new Event("change"));
        emit("refresh-thread");
        emit("refresh-list");
      } catch (error) {
        toast(t("failed", { error: error.message }), "error");
        refresh();
      }
    });
    replace(node, h("div.template-row", {}, chooser, sendTemplate), fields, preview);
  };
  return {
    node,
    load: () => {
      if (loaded) return loaded;
      replace(node, h("p.muted.small", {}, t("loading")));
      loaded = api.get(`/conversations/${self.conversationId}/templates`)
        .then((answer) => render(answer.templates || []))
        .catch((error) => {
          loaded = null;
          replace(node, h("p.muted.small", {}, t("failed", { error: error.message })));
        });
      return loaded;
    },
  };
}

function buildComposer(conversationId) {
  const textarea = h("textarea.composer-input", { rows: 3, dir: "auto", "aria-label": t("reply") });
  const tabs = h("div.composer-tabs", { role: "tablist" });
  const suggest = h("div.suggest", { role: "listbox", hidden: true });
  const sendButton = h("button.btn.primary.send", { type: "button" });
  const notice = h("div.collision", { hidden: true, "aria-live": "polite" });
  const tray = attachmentTray(conversationId);
  const picker = h("input.file-input", { type: "file", multiple: true, hidden: true, tabindex: "-1" });
  const attachButton = h("button.btn.sm.attach", { type: "button", title: t("attach_title"), "aria-label": t("attach"), onclick: () => picker.click() },
    icon("paperclip", 14), t("attach"));
  picker.addEventListener("change", () => {
    tray.add([...picker.files]);
    picker.value = "";
  });
  const windowLine = h("div.reply-window", { hidden: true, "aria-live": "polite" });
  const closed = h("div.window-closed", { hidden: true, role: "region" });
  const textBox = h("div.composer-box", {}, textarea, suggest);
  const foot = h("div.composer-foot", {}, h("div.foot-start", {}, attachButton, picker, h("span.muted.small.hint")), sendButton);
  const box = h("div.composer", { dataset: { drop: t("drop_files") } }, notice, windowLine, tabs, closed, textBox, tray.node, foot);
  const self = { box, textarea, mode: "reply", mentions: new Map(), items: [], active: 0, lastTyping: 0, conversationId, notice, tray, window: null, timer: null };
  const templates = templatePicker(self);

  /** Show the window as it stands now; in reply mode, a closed one swaps the text box for
   * the notice and the template picker (notes are always allowed). */
  const showWindow = () => {
    const rw = self.window;
    const open = windowOpen(rw);
    const closesAt = rw?.closes_at ? Date.parse(rw.closes_at) : null;
    windowLine.hidden = !rw || (open && closesAt === null);
    windowLine.classList.toggle("closing", open && closesAt !== null && closesAt - Date.now() < HOUR);
    windowLine.classList.toggle("closed", !open);
    if (!windowLine.hidden) {
      replace(windowLine, icon("clock", 13), h("span", { title: closesAt ? fullTime(rw.closes_at) : "" },
        open ? t("window_closes_in", { left: duration(closesAt - Date.now()) }) : t("window_closed_short")));
    }
    const blocked = !open && self.mode === "reply";
    box.classList.toggle("window-shut", blocked);
    closed.hidden = !blocked;
    textBox.hidden = foot.hidden = blocked; // files waiting in the tray are hidden by CSS
    if (blocked && !closed.firstChild) {
      const reason = closesAt
        ? t("window_closed", { when: relative(rw.closes_at) })
        : t("window_never");
      closed.append(h("p.window-notice", { dir: "auto" }, icon("clock", 14), h("span", {}, reason)), templates.node);
    }
    if (blocked) templates.load();
  };
  self.setWindow = (replyWindow) => {
    const was = JSON.stringify(self.window);
    self.window = replyWindow || null;
    if (was !== JSON.stringify(self.window)) clear(closed);
    clearInterval(self.timer);
    self.timer = null;
    if (self.window?.closes_at && windowOpen(self.window)) {
      // Counts down each half minute; at closes_at the composer closes without a reload.
      self.timer = setInterval(() => {
        if (!box.isConnected) { clearInterval(self.timer); return; }
        if (!windowOpen(self.window)) clearInterval(self.timer);
        showWindow();
      }, 30_000);
    }
    showWindow();
  };

  // Files dropped anywhere on the composer, or pasted into the text box, are attached.
  let dragDepth = 0;
  const carriesFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  box.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    dragDepth += 1;
    box.classList.add("drag-over");
  });
  box.addEventListener("dragover", (event) => { if (carriesFiles(event)) event.preventDefault(); });
  box.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) box.classList.remove("drag-over");
  });
  box.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    dragDepth = 0;
    box.classList.remove("drag-over");
    tray.add([...event.dataTransfer.files]);
  });
  textarea.addEventListener("paste", (event) => {
    const pasted = [...(event.clipboardData?.files || [])];
    if (!pasted.length) return;
    event.preventDefault();
    tray.add(pasted);
  });

  const setMode = (mode) => {
    self.mode = mode;
    box.classList.toggle("note-mode", mode === "note");
    replace(tabs,
      h(`button.tab${mode === "reply" ? ".active" : ""}`, { role: "tab", "aria-selected": String(mode === "reply"), onclick: () => { setMode("reply"); textarea.focus(); }, "data-mode": "reply" }, icon("send", 14), t("reply")),
      h(`button.tab${mode === "note" ? ".active" : ""}`, { role: "tab", "aria-selected": String(mode === "note"), onclick: () => { setMode("note"); textarea.focus(); }, "data-mode": "note" }, icon("note", 14), t("note")));
    textarea.placeholder = t(mode === "note" ? "note_ph" : "reply_ph");
    replace(sendButton, icon(mode === "note" ? "note" : "send", 14), t(mode === "note" ? "add_note" : "send"));
    replace(box.querySelector(".hint"), h("kbd", {}, navigator.platform.includes("Mac") ? "⌘ Enter" : "Ctrl Enter"),
      h("span", {}, t(mode === "note" ? "note_hint" : "reply_hint")));
    showWindow();
  };
  self.setMode = setMode;

  const token = () => {
    const before = textarea.value.slice(0, textarea.selectionStart);
    const match = before.match(/(^|\s)([/@])([^\s/@]*)$/);
    return match ? { trigger: match[2], query: match[3], start: before.length - match[3].length - 1 } : null;
  };

  const closeSuggest = () => { suggest.hidden = true; self.items = []; };
  const renderSuggest = () => {
    replace(suggest, self.items.map((item, i) =>
      h(`button.suggest-item${i === self.active ? ".active" : ""}`, { role: "option", type: "button", onmousedown: (e) => { e.preventDefault(); choose(i); } },
        h("strong", { dir: "auto" }, item.label), h("span.muted", { dir: "auto" }, item.hint))));
    suggest.hidden = self.items.length === 0;
  };
  const choose = (index) => {
    const item = self.items[index];
    const tok = token();
    if (!item || !tok) return closeSuggest();
    const value = textarea.value;
    const end = textarea.selectionStart;
    textarea.value = value.slice(0, tok.start) + item.insert + value.slice(end);
    const caret = tok.start + item.insert.length;
    textarea.setSelectionRange(caret, caret);
    if (item.agentId) self.mentions.set(item.insert.trim(), item.agentId);
    closeSuggest();
    textarea.focus();
  };

  textarea.addEventListener("input", () => {
    const tok = token();
    if (tok && tok.trigger === "/" && tok.start === 0 || tok && tok.trigger === "/" && /\s$/.test(textarea.value.slice(0, tok.start))) {
      self.items = cannedCandidates(tok.query);
    } else if (tok && tok.trigger === "@" && self.mode === "note") {
      self.items = mentionCandidates(tok.query);
    } else {
      self.items = [];
    }
    self.active = 0;
    renderSuggest();
    const now = Date.now();
    if (self.conversationId && now - self.lastTyping > 2500 && textarea.value) {
      self.lastTyping = now;
      emit("typing", self.conversationId);
    }
  });
  textarea.addEventListener("keydown", (event) => {
    if (!suggest.hidden && self.items.length) {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        self.active = (self.active + (event.key === "ArrowDown" ? 1 : -1) + self.items.length) % self.items.length;
        renderSuggest();
        return;
      }
      if (event.key === "Enter" || event.key === "Tab") {
        event.preventDefault();
        choose(self.active);
        return;
      }
      if (event.key === "Escape") { closeSuggest(); return; }
    }
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      send();
    } else if (event.key === "Escape") {
      textarea.blur();
    }
  });
  textarea.addEventListener("blur", () => setTimeout(closeSuggest, 150));

  const send = async () => {
    const text = textarea.value.trim();
    if (tray.busy()) {
      toast(t("wait_uploads"), "info");
      return;
    }
    const attachments = tray.ids();
    if ((!text && !attachments.length) || !self.conversationId) return;
    const isNote = self.mode === "note";
    if (!isNote && !windowOpen(self.window)) {
      showWindow();
      return;
    }
    const mentions = isNote ? [...self.mentions].filter(([tag]) => text.includes(tag)).map(([, id]) => id) : [];
    sendButton.disabled = true;
    const path = `/conversations/${self.conversationId}/messages`;
    const body = { private: isNote };
    if (text) body.text = text;
    if (attachments.length) body.attachments = attachments;
    try {
      try {
        await api.post(path, isNote ? { ...body, mentions } : body);
      } catch (error) {
        // Older servers refuse the `mentions` key; they read @Name from the text instead.
        if (!(isNote && error.status === 422 && /mentions/.test(error.message))) throw error;
        await api.post(path, body);
      }
      textarea.value = "";
      tray.clear();
      self.mentions.clear();
      emit("refresh-thread");
      emit("refresh-list");
    } catch (error) {
      toast(t("failed", { error: error.message }), "error");
      if (error.status === 409) emit("refresh-thread"); // the window closed meanwhile
    } finally {
      sendButton.disabled = false;
    }
  };
  sendButton.addEventListener("click", send);
  setMode("reply");
  return self;
}

export function focusComposer(mode) {
  if (!composer || !state.current) return;
  composer.setMode(mode);
  composer.textarea.focus();
}

export function renderCollision() {
  if (!composer) return;
  const signal = state.collision.get(state.currentId);
  const others = (list) => (list || []).filter((a) => a.id !== state.me.id).map((a) => a.name || agentName(a.id));
  const typing = others(signal?.typing);
  const viewing = others(signal?.viewing).filter((n) => !typing.includes(n));
  const node = composer.notice;
  clear(node);
  const customerTyping = (state.customerTyping.get(state.currentId) || 0) > Date.now();
  if (customerTyping) node.appendChild(h("span.typing.customer-typing", {}, h("span.dots", {}, h("i"), h("i"), h("i")), t("customer_typing")));
  if (typing.length) node.appendChild(h("span.typing", {}, h("span.dots", {}, h("i"), h("i"), h("i")), t("typing", { names: typing.join("، ") })));
  if (viewing.length) node.appendChild(h("span.viewing", {}, icon("users", 14), t("viewing", { names: viewing.join("، ") })));
  node.hidden = !customerTyping && !typing.length && !viewing.length;
}

// ---------------------------------------------------------------- the pane

export function renderThread(pane, detail, { keepComposer = false } = {}) {
  const { reactions, drawn } = reactionsByTarget(detail.messages);
  const timeline = [
    ...detail.messages
      .filter((m) => !drawn.has(m.id))
      .map((m) => ({ at: m.created_at, id: m.id, node: () => messageNode(m, reactions.get(m.id) || []) })),
    ...detail.activities
      .map((a) => ({ a, text: activityText(a) }))
      .filter((x) => x.text)
      .map(({ a, text }) => ({ at: a.created_at, id: a.id, node: () => h("div.activity", {}, h("span", {}, text), h("time", { title: fullTime(a.created_at) }, shortTime(a.created_at))) })),
  ].sort((x, y) => (x.at < y.at ? -1 : x.at > y.at ? 1 : 0));

  const oldScroll = pane.querySelector(".messages");
  const nearBottom = !oldScroll || oldScroll.scrollHeight - oldScroll.scrollTop - oldScroll.clientHeight < 80;
  const messages = h("div.messages", { role: "log", "aria-live": "polite" });
  let lastDay = "";
  for (const item of timeline) {
    const day = new Date(item.at).toDateString();
    if (day !== lastDay) {
      lastDay = day;
      messages.appendChild(h("div.day", {}, h("span", {}, fullTime(item.at).split(/[،,]\s*/)[0])));
    }
    messages.appendChild(item.node());
  }
  const offer = faqOffer(detail);
  if (offer) messages.appendChild(offer);
  if (detail.csat) messages.appendChild(csatCard(detail.csat));
  if (!composer || !keepComposer || composer.conversationId !== detail.id) {
    composer = buildComposer(detail.id);
  }
  composer.setWindow(detail.reply_window);
  replace(pane, header(detail), messages, composer.box);
  renderCollision();
  if (nearBottom || !keepComposer) messages.scrollTop = messages.scrollHeight;
  else messages.scrollTop = oldScroll.scrollTop;
}

export function renderEmptyThread(pane) {
  composer = null;
  replace(pane, h("div.empty-state", {}, icon("inbox", 48), h("h3", {}, t("pick_conversation")), h("p.muted", {}, t("pick_hint"))));
}
