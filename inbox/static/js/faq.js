// The FAQ bot in the inbox: the admins' knowledge base and review queue, the bot's turns and
// handovers in the thread, "take over", and the offer to turn an agent's answer into an entry.

import * as api from "./api.js";
import { h, icon, replace, toast } from "./dom.js";
import { fullTime, locale, num, t } from "./i18n.js";
import { agentName, emit } from "./state.js";

const MAX_QUESTION = 10000;
const MAX_ANSWER = 10000;

function fail(error) {
  toast(t("failed", { error: error.message }), "error");
}

const lines = (value) => value.split("\n").map((x) => x.trim()).filter(Boolean);
const words = (value) => value.split(/[,،\n]/).map((x) => x.trim()).filter(Boolean);
const percent = (score) =>
  new Intl.NumberFormat(locale() === "fa" ? "fa-IR" : "en-US", { style: "percent" }).format(score);

function modal(title, content, { wide = false } = {}) {
  const back = h("div.modal-back", { onclick: (e) => { if (e.target === back) back.remove(); } });
  const close = () => back.remove();
  back.appendChild(h(`div.modal${wide ? ".modal-wide" : ""}`, { role: "dialog", "aria-label": title },
    h("div.modal-head", {}, h("h3", {}, title), h("button.icon-btn", { type: "button", onclick: close, "aria-label": t("close") }, "×")),
    content));
  document.body.appendChild(back);
  return close;
}

// ---------------------------------------------------------------- the knowledge base (admins)

/** The edit form of one entry (`entry` null: a new one); `onSaved` after the server agreed. */
function entryForm(entry, onSaved) {
  const e = entry || { question: "", alternatives: [], answer: "", language: "fa", tags: [], enabled: true };
  const question = h("input.input", { name: "question", value: e.question, dir: "auto", required: true, maxlength: MAX_QUESTION, id: "faq-question" });
  const alternatives = h("textarea.input", { name: "alternatives", rows: 3, dir: "auto", id: "faq-alternatives", placeholder: t("faq_alternatives_ph") });
  alternatives.value = (e.alternatives || []).join("\n");
  const answer = h("textarea.input", { name: "answer", rows: 5, dir: "auto", required: true, maxlength: MAX_ANSWER, id: "faq-answer" });
  answer.value = e.answer;
  const language = h("select.select", { name: "language", id: "faq-language" },
    ["fa", "en"].map((l) => h("option", { value: l, selected: e.language === l }, t(`lang_${l}`))));
  const tags = h("input.input", { name: "tags", value: (e.tags || []).join("، "), dir: "auto", id: "faq-tags", placeholder: t("faq_tags_ph") });
  const enabled = h("input", { type: "checkbox", name: "enabled", checked: e.enabled, id: "faq-enabled" });
  const error = h("p.form-error", { role: "alert" });
  const form = h("form.faq-form", {},
    h("label", { for: "faq-question" }, t("faq_question")), question,
    h("label", { for: "faq-alternatives" }, t("faq_alternatives")), alternatives,
    h("label", { for: "faq-answer" }, t("faq_answer")), answer,
    h("div.faq-form-row", {},
      h("div", {}, h("label", { for: "faq-language" }, t("rule_language")), language),
      h("div.grow", {}, h("label", { for: "faq-tags" }, t("faq_tags")), tags)),
    h("label.check", { for: "faq-enabled" }, enabled, " ", t("enabled")),
    error,
    h("div.form-actions", {}, h("button.btn.primary", { type: "submit" }, t("save"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = {
      question: question.value,
      alternatives: lines(alternatives.value),
      answer: answer.value,
      language: language.value,
      tags: words(tags.value),
      enabled: enabled.checked,
    };
    try {
      const saved = entry ? await api.patch(`/faq/entries/${entry.id}`, body) : await api.post("/faq/entries", body);
      toast(t("saved"), "success");
      onSaved(saved);
    } catch (err) {
      error.textContent = err.message;
    }
  });
  return form;
}

function openEntry(entry, rerender) {
  let close = () => {};
  const form = entryForm(entry, () => { close(); rerender(); });
  close = modal(entry ? t("faq_edit") : t("faq_new"), form, { wide: true });
  form.querySelector("input").focus();
}

function importControls(rerender) {
  const picker = h("input.file-input", { type: "file", accept: ".yaml,.yml,application/yaml,text/yaml", hidden: true, id: "faq-import-file" });
  const replaceAll = h("input", { type: "checkbox", id: "faq-import-replace" });
  picker.addEventListener("change", async () => {
    const file = picker.files[0];
    picker.value = "";
    if (!file) return;
    if (replaceAll.checked && !confirm(t("faq_replace_confirm"))) return;
    try {
      const answer = await api.upload(`/faq/import${replaceAll.checked ? "?replace=true" : ""}`, [file]);
      toast(t("faq_imported", { n: num(importedCount(answer)) }), "success");
      rerender();
    } catch (error) {
      const reason = error.message.replace(/^nothing imported:\s*/, "");
      toast(t("faq_import_failed", { error: reason }), "error", { timeout: 9000 });
    }
  });
  return [
    h("button.btn.sm", { type: "button", onclick: () => picker.click(), "data-action": "faq-import" }, t("faq_import")),
    picker,
    h("label.small.check", { for: "faq-import-replace" }, replaceAll, " ", t("faq_replace")),
    h("a.btn.sm", { href: "/api/v1/faq/export", download: "faq.yaml", "data-action": "faq-export" }, t("faq_export")),
  ];
}

function importedCount(answer) {
  if (!answer) return 0;
  const counts = ["created", "updated", "imported", "added"].map((k) => answer[k]).filter((v) => typeof v === "number");
  return counts.length ? counts.reduce((a, b) => a + b, 0) : answer.count ?? 0;
}

/** The admin tab "Knowledge base": search, list, edit, enable/disable, delete, import/export. */
export async function knowledgeTab(body) {
  const search = h("input.input.sm.grow", { type: "search", placeholder: t("faq_search_ph"), dir: "auto", "aria-label": t("faq_search_ph"), id: "faq-search" });
  const language = h("select.select.sm", { "aria-label": t("rule_language") },
    h("option", { value: "" }, t("rule_any")), ["fa", "en"].map((l) => h("option", { value: l }, t(`lang_${l}`))));
  const listing = h("div.faq-list", {}, h("p.muted", {}, t("loading")));
  const load = async () => {
    const params = new URLSearchParams({ limit: "500" });
    if (search.value.trim()) params.set("q", search.value.trim());
    if (language.value) params.set("language", language.value);
    try {
      renderEntries(listing, await api.get(`/faq/entries?${params}`), load);
    } catch (error) {
      replace(listing, h("p.muted", {}, t("failed", { error: error.message })));
    }
  };
  let timer = null;
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(load, 200); });
  language.addEventListener("change", load);
  replace(body,
    h("div.card", {},
      h("div.inline-form", {}, search, language,
        h("button.btn.primary.sm", { type: "button", onclick: () => openEntry(null, load), "data-action": "faq-new" }, "+ " + t("faq_new")),
        importControls(load)),
      h("p.muted.small", {}, t("faq_help"))),
    h("div.card", {}, listing));
  await load();
}

function renderEntries(listing, data, reload) {
  const run = async (promise) => {
    try { await promise; reload(); } catch (error) { fail(error); }
  };
  if (!data.entries.length) {
    replace(listing, h("p.muted.empty-row", {}, t("faq_none")));
    return;
  }
  const rows = data.entries.map((e) => {
    const enabled = h("input", { type: "checkbox", checked: e.enabled, "aria-label": t("enabled") });
    enabled.addEventListener("change", () => run(api.patch(`/faq/entries/${e.id}`, { enabled: enabled.checked })));
    return h(`tr.faq-entry${e.enabled ? "" : ".inactive"}`, { dataset: { id: e.id } },
      h("td", {}, h("strong", { dir: "auto" }, e.question),
        e.alternatives.length ? h("div.muted.small", { dir: "auto" }, e.alternatives.join(" · ")) : null),
      h("td.wrap-text.faq-answer", { dir: "auto" }, e.answer.length > 160 ? e.answer.slice(0, 160) + "…" : e.answer),
      h("td", {}, h("span.chip.sm", {}, t(`lang_${e.language}`))),
      h("td", {}, e.tags.map((tag) => h("span.chip.sm", { dir: "auto" }, tag))),
      h("td", {}, h("label.small.check", {}, enabled, " ", t("enabled"))),
      h("td.nowrap", {},
        h("button.btn.xs", { type: "button", onclick: () => openEntry(e, reload), "data-action": "faq-edit" }, t("edit")),
        h("button.btn.xs.danger-ghost", { type: "button", "data-action": "faq-delete", onclick: () => {
          if (confirm(t("faq_delete_confirm", { q: e.question }))) run(api.del(`/faq/entries/${e.id}`));
        } }, t("remove"))));
  });
  replace(listing,
    h("p.muted.small", {}, t("faq_count", { n: num(data.total) })),
    h("table.table.faq-table", {},
      h("thead", {}, h("tr", {}, [t("faq_question"), t("faq_answer"), t("rule_language"), t("faq_tags"), "", ""].map((x) => h("th", {}, x)))),
      h("tbody", {}, rows)));
}

// ---------------------------------------------------------------- the review queue (admins)

/** The admin tab "Review queue": pending suggestions, approved as they are or edited, or rejected. */
export async function reviewTab(body, rerender) {
  const data = await api.get("/faq/suggestions?status=pending");
  if (!data.suggestions.length) {
    replace(body, h("div.card", {}, h("p.muted.empty-row", {}, t("faq_review_none"))));
    return;
  }
  const cards = data.suggestions.map((s) => {
    const question = h("textarea.input", { rows: 2, dir: "auto", maxlength: MAX_QUESTION, "aria-label": t("faq_question") });
    question.value = s.question;
    const answer = h("textarea.input", { rows: 4, dir: "auto", maxlength: MAX_ANSWER, "aria-label": t("faq_answer") });
    answer.value = s.answer;
    const language = h("select.select.sm", { "aria-label": t("rule_language") },
      ["fa", "en"].map((l) => h("option", { value: l, selected: s.language === l }, t(`lang_${l}`))));
    const act = async (path, payload) => {
      try {
        await api.post(`/faq/suggestions/${s.id}/${path}`, payload);
        toast(t(path === "approve" ? "faq_approved" : "faq_rejected"), "success");
        rerender();
      } catch (error) { fail(error); }
    };
    const edits = () => {
      const payload = {};
      if (question.value.trim() !== s.question) payload.question = question.value;
      if (answer.value.trim() !== s.answer) payload.answer = answer.value;
      if (language.value !== s.language) payload.language = language.value;
      return payload;
    };
    return h("div.card.faq-suggestion", { dataset: { id: s.id } },
      h("div.muted.small", {},
        t("faq_suggested_by", { name: agentName(s.suggested_by) || "—" }), " · ", fullTime(s.created_at),
        s.conversation_id ? [" · ", h("button.link.small", { type: "button", onclick: () => emit("open-conversation", s.conversation_id) }, `#${num(s.conversation_id)}`)] : null),
      h("label.small", {}, t("faq_question")), question,
      h("label.small", {}, t("faq_answer")), answer,
      h("div.inline-form", {}, language,
        h("button.btn.success.sm", { type: "button", onclick: () => act("approve", edits()), "data-action": "faq-approve" }, icon("check", 14), t("faq_approve")),
        h("button.btn.sm.danger-ghost", { type: "button", onclick: () => act("reject", {}), "data-action": "faq-reject" }, t("faq_reject"))));
  });
  replace(body, h("p.muted.small", {}, t("faq_review_help")), cards);
}

// ---------------------------------------------------------------- the thread

const entryQuestions = new Map();

/** The question of the entry a bot answer came from (read once per entry, then remembered). */
function entryQuestion(id, node) {
  if (entryQuestions.has(id)) {
    node.textContent = entryQuestions.get(id);
    return;
  }
  api.get(`/faq/entries/${id}`).then((entry) => {
    entryQuestions.set(id, entry.question);
    node.textContent = entry.question;
  }, () => { node.textContent = `#${num(id)}`; });
}

/** What the bot did in a turn, under its message: the entry and score, or the choices offered. */
export function botDetails(message) {
  const bot = message.metadata?.bot;
  if (!bot) return null;
  const kind = bot.kind;
  if (kind === "answer") {
    const question = h("q.faq-q", { dir: "auto" }, "…");
    if (bot.entry_id) entryQuestion(bot.entry_id, question);
    return h("div.bot-details", { dataset: { kind } },
      icon("bot", 12), h("span", {}, t("bot_answered_from")), question,
      typeof bot.score === "number" ? h("span.bot-score", { title: t("bot_score") }, percent(bot.score)) : null);
  }
  if (kind === "choose") {
    return h("div.bot-details", { dataset: { kind } },
      icon("bot", 12), h("span", {}, t("bot_offered")),
      h("ol.bot-choices", {}, (bot.choices || []).map((c) =>
        h("li", {}, h("span", { dir: "auto" }, c.question), typeof c.score === "number" ? h("span.bot-score", {}, percent(c.score)) : null))));
  }
  return h("div.bot-details", { dataset: { kind } }, icon("bot", 12), h("span", {}, t(kind === "handover" ? "bot_handover" : "bot_unknown")));
}

const REASONS = ["asked", "unknown", "misses", "agent"];

/** The thread's line for a bot event, or null for other activities. */
export function botActivityText(activity) {
  if (activity.type !== "conversation.handed_over") return null;
  const reason = activity.data?.reason;
  const why = REASONS.includes(reason) ? t(`handover_${reason}`) : "";
  return why ? `${t("act_handed_over")} — ${why}` : t("act_handed_over");
}

/** The header's notice while the bot has the conversation, with the "Take over" button. */
export function botBanner(detail) {
  if (detail.status !== "bot") return null;
  const button = h("button.btn.sm.primary", { type: "button", "data-action": "take-over" }, icon("user", 14), t("take_over"));
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api.post(`/conversations/${detail.id}/take-over`);
      toast(t("taken_over"), "success");
      emit("refresh-thread");
      emit("refresh-list");
    } catch (error) {
      fail(error);
      button.disabled = false;
    }
  });
  return h("div.bot-banner", { role: "status" }, icon("bot", 16), h("span", {}, t("with_bot")), button);
}

const offered = new Set(JSON.parse(sessionStorage.getItem("pishkhan.faq-offered") || "[]"));

function remember(key) {
  offered.add(key);
  sessionStorage.setItem("pishkhan.faq-offered", JSON.stringify([...offered].slice(-200)));
}

/**
 * After an agent answered a conversation the bot handed over because it did not know, the
 * customer's question and that answer; null otherwise.
 */
export function unansweredPair(detail) {
  const messages = detail.messages || [];
  const botTurns = messages.filter((m) => m.author_kind === "bot");
  const lastBot = botTurns[botTurns.length - 1];
  const handovers = (detail.activities || []).filter((a) => a.type === "conversation.handed_over");
  const lastHandover = handovers[handovers.length - 1];
  const didNotKnow = lastBot?.metadata?.bot?.kind === "unknown" || ["unknown", "misses"].includes(lastHandover?.data?.reason);
  if (!didNotKnow) return null;
  const since = lastBot ? lastBot.id : 0;
  const reply = [...messages].reverse().find((m) => m.id > since && m.author_kind === "agent" && !m.private && m.direction === "out" && m.text);
  if (!reply) return null;
  const unanswered = detail.metadata?.bot?.unanswered;
  const asked = [...messages].reverse().find((m) => m.id < reply.id && (m.author_kind === "customer" || m.direction === "in") && m.text);
  const question = typeof unanswered === "string" && unanswered.trim() ? unanswered : asked?.text;
  if (!question) return null;
  return { question: question.trim(), answer: reply.text.trim(), replyId: reply.id };
}

let shown = { key: "", node: null };

/**
 * The unobtrusive "Add this answer to the FAQ" offer under the thread, with its small form. The
 * thread is drawn again on every event: the same offer keeps its node, so an open form keeps
 * what the agent typed.
 */
export function faqOffer(detail) {
  const pair = unansweredPair(detail);
  if (!pair) return null;
  const key = `${detail.id}:${pair.replyId}`;
  if (offered.has(key)) return null;
  if (shown.key === key) return shown.node;
  const node = h("div.faq-offer", { role: "note" });
  shown = { key, node };
  const dismiss = () => { remember(key); node.remove(); };
  const showForm = () => {
    const question = h("textarea.input", { rows: 2, dir: "auto", maxlength: MAX_QUESTION, "aria-label": t("faq_question"), name: "question" });
    question.value = pair.question.slice(0, MAX_QUESTION);
    const answer = h("textarea.input", { rows: 3, dir: "auto", maxlength: MAX_ANSWER, "aria-label": t("faq_answer"), name: "answer" });
    answer.value = pair.answer.slice(0, MAX_ANSWER);
    const form = h("form.faq-offer-form", {},
      h("label.small", {}, t("faq_question")), question,
      h("label.small", {}, t("faq_answer")), answer,
      h("div.inline-form", {},
        h("button.btn.primary.sm", { type: "submit" }, t("faq_send_suggestion")),
        h("button.btn.sm.ghost", { type: "button", onclick: dismiss }, t("cancel"))));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await api.post(`/conversations/${detail.id}/faq-suggestion`, { question: question.value, answer: answer.value });
        remember(key);
        toast(t("faq_suggested"), "success");
        node.remove();
      } catch (error) { fail(error); }
    });
    replace(node, form);
    question.focus();
  };
  replace(node, icon("bot", 14), h("span", {}, t("faq_offer")),
    h("button.link.small", { type: "button", onclick: showForm, "data-action": "faq-offer" }, t("faq_offer_add")),
    h("button.chip-x", { type: "button", onclick: dismiss, title: t("close"), "aria-label": t("close") }, "×"));
  return node;
}

/** For admin.js: the two FAQ tabs. */
export const FAQ_TABS = [
  ["faq", "ad_faq", "bot", knowledgeTab],
  ["faq_review", "ad_faq_review", "check", reviewTab],
];
