// SLA clocks in the inbox: the time left on a conversation (list rows and the thread header),
// red once a deadline has passed, amber inside the warning window, grey while paused; and the
// words of an `sla_warning` notification. Badges keep counting down by themselves.

import { h } from "./dom.js";
import { addStrings, fullTime, num, t } from "./i18n.js";

addStrings({
  fa: {
    sla_first_response: "اولین پاسخ",
    sla_next_response: "پاسخ بعدی",
    sla_resolution: "حل",
    sla_left: "{metric}: {time} مانده",
    sla_over: "{metric}: {time} دیر",
    sla_paused: "{metric}: متوقف",
    sla_title: "سیاست {policy} · مهلت {due}",
    sla_paused_title: "سیاست {policy} · تا پاسخ مشتری یا پایان تعویق متوقف است",
    sla_warning_title: "مهلت «{metric}» نزدیک است",
    sla_act_warning: "هشدار: مهلت «{metric}» نزدیک است ({policy})",
    sla_act_breached: "مهلت «{metric}» گذشت ({policy})",
    sla_days: "{n} روز",
    sla_hours: "{n} ساعت",
    sla_minutes: "{n} دقیقه",
  },
  en: {
    sla_first_response: "First response",
    sla_next_response: "Next response",
    sla_resolution: "Resolution",
    sla_left: "{metric}: {time} left",
    sla_over: "{metric}: {time} overdue",
    sla_paused: "{metric}: paused",
    sla_title: "Policy {policy} · due {due}",
    sla_paused_title: "Policy {policy} · paused until the customer answers or the snooze ends",
    sla_warning_title: "{metric} deadline is near",
    sla_act_warning: "Warning: the {metric} deadline is near ({policy})",
    sla_act_breached: "The {metric} deadline was missed ({policy})",
    sla_days: "{n}d",
    sla_hours: "{n}h",
    sla_minutes: "{n}m",
  },
});

const COLOURS = {
  breached: "color:#b91c1c;background:#fef2f2;border-color:#fecaca",
  warning: "color:#b45309;background:#fffbeb;border-color:#fde68a",
  running: "color:#166534;background:#f0fdf4;border-color:#bbf7d0",
  paused: "color:#4b5563;background:#f3f4f6;border-color:#e5e7eb",
};

/** "2h 5m" / "۲ ساعت ۵ دقیقه": the two largest units of a span of seconds. */
export function span(seconds) {
  const minutes = Math.max(0, Math.round(Math.abs(seconds) / 60));
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const parts = [];
  if (days) parts.push(t("sla_days", { n: num(days) }));
  if (hours) parts.push(t("sla_hours", { n: num(hours) }));
  if (!days && (minutes % 60 || !hours)) parts.push(t("sla_minutes", { n: num(minutes % 60) }));
  return parts.slice(0, 2).join(" ");
}

/** breached | warning | running | paused, or null for a conversation without a clock. */
export function slaState(sla, now = Date.now()) {
  if (!sla) return null;
  if (sla.paused) return "paused";
  const due = Date.parse(sla.due_at);
  if (due <= now) return "breached";
  if (sla.warn_from && Date.parse(sla.warn_from) <= now) return "warning";
  return "running";
}

function fill(element, sla) {
  const state = slaState(sla);
  const metric = t(`sla_${sla.metric}`);
  let text;
  if (state === "paused") text = t("sla_paused", { metric });
  else {
    const seconds = (Date.parse(sla.due_at) - Date.now()) / 1000;
    text = t(state === "breached" ? "sla_over" : "sla_left", { metric, time: span(seconds) });
  }
  element.textContent = text;
  element.dataset.state = state;
  element.className = `sla sla-${state}${element.classList.contains("sm") ? " sm" : ""}`;
  element.setAttribute("style", `display:inline-block;border:1px solid;border-radius:999px;padding:0 .5rem;font-size:.75rem;white-space:nowrap;${COLOURS[state]}`);
  element.title = state === "paused"
    ? t("sla_paused_title", { policy: sla.policy })
    : t("sla_title", { policy: sla.policy, due: fullTime(sla.due_at) });
}

/** The badge for a conversation's `sla` (null without a running clock). */
export function slaBadge(sla, { small = false } = {}) {
  if (!sla) return null;
  const element = h(`span.sla${small ? ".sm" : ""}`, { dataset: { sla: JSON.stringify(sla) } });
  fill(element, sla);
  return element;
}

/** Title of an `sla_warning` notification; its text is "<metric> <due_at> <subject>". */
export function slaNotificationTitle(note) {
  const metric = String(note.text || "").split(" ")[0];
  return t("sla_warning_title", { metric: t(`sla_${metric}`) });
}

export function slaNotificationText(note) {
  const [, due = "", ...subject] = String(note.text || "").split(" ");
  return [subject.join(" "), due ? fullTime(due) : ""].filter(Boolean).join(" · ");
}

/** The thread's line for an `sla.warning` or `sla.breached` event (null for others). */
export function slaActivityText(activity) {
  const kind = { "sla.warning": "sla_act_warning", "sla.breached": "sla_act_breached" }[activity.type];
  if (!kind) return null;
  const data = activity.data || {};
  return t(kind, { metric: t(`sla_${data.metric}`), policy: data.policy || "" });
}

setInterval(() => {
  for (const element of document.querySelectorAll("span.sla[data-sla]")) {
    try { fill(element, JSON.parse(element.dataset.sla)); } catch { /* a badge being replaced */ }
  }
}, 30000);
