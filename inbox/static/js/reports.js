// Reports: a period picker and filters, summary cards, charts drawn here as inline SVG, and
// tables by channel, team and agent, each with its CSV download. Figures: docs/reports.md.

import * as api from "./api.js";
import { h, icon, replace } from "./dom.js";
import { addStrings, channelName, locale, num, t } from "./i18n.js";
import { state } from "./state.js";

addStrings({
  fa: {
    reports: "گزارش‌ها",
    rp_last: "{n} روز اخیر",
    rp_custom: "بازهٔ دلخواه",
    rp_from: "از",
    rp_to: "تا",
    rp_apply: "نمایش",
    rp_by_day: "روزانه",
    rp_by_week: "هفتگی",
    rp_group: "گروه‌بندی",
    rp_all_channels: "همهٔ کانال‌ها",
    rp_all_teams: "همهٔ تیم‌ها",
    rp_all_agents: "همهٔ کارشناسان",
    rp_my_figures: "کارنامهٔ شما",
    rp_period: "{from} تا {to}",
    rp_opened: "گفتگوهای باز شده",
    rp_resolved: "حل‌شده",
    rp_first_response: "اولین پاسخ (میانه)",
    rp_resolution: "زمان حل (میانه)",
    rp_p90: "صدک ۹۰: {p90}",
    rp_breaches: "نقض SLA",
    rp_csat: "رضایت مشتری",
    rp_csat_detail: "{rate} پاسخ داده‌اند ({answered} از {sent})",
    rp_bot: "حل به‌دست ربات",
    rp_bot_detail: "{handoff} سپرده به کارشناس · از {n} گفتگوی ربات",
    rp_chart_volume: "گفتگوهای باز شده و حل‌شده",
    rp_chart_hours: "شلوغ‌ترین ساعت‌ها (پیام‌های مشتریان)",
    rp_chart_csat: "توزیع امتیاز رضایت",
    rp_by_channel: "بر اساس کانال",
    rp_by_team: "بر اساس تیم",
    rp_by_agent: "بر اساس کارشناس",
    rp_by_bucket: "روند",
    rp_csv: "CSV",
    rp_download: "دریافت CSV: {name}",
    rp_none: "—",
    rp_no_team: "بدون تیم",
    rp_no_agent: "بدون کارشناس",
    rp_total: "جمع",
    rp_seconds: "{n} ثانیه",
    rp_minutes: "{n} دقیقه",
    rp_hours: "{h} ساعت {m} دقیقه",
    rp_days: "{d} روز {h} ساعت",
    rp_forbidden: "این گزارش برای شما نیست",
    rp_loading: "در حال محاسبه…",
    rp_stars: "{n} ستاره",
    rp_timezone: "منطقهٔ زمانی: {zone}",
    rp_col_opened: "باز شده",
    rp_col_resolved: "حل‌شده",
    rp_col_frt: "اولین پاسخ (میانه)",
    rp_col_frt90: "اولین پاسخ (صدک ۹۰)",
    rp_col_resolution: "زمان حل (میانه)",
    rp_col_resolution90: "زمان حل (صدک ۹۰)",
    rp_col_breaches: "نقض SLA",
    rp_col_csat: "میانگین رضایت",
    rp_col_csat_rate: "پاسخ به نظرسنجی",
    rp_col_bot: "حل به‌دست ربات",
    rp_col_handoff: "سپرده به کارشناس",
    wd_mon: "دوشنبه", wd_tue: "سه‌شنبه", wd_wed: "چهارشنبه", wd_thu: "پنجشنبه", wd_fri: "جمعه", wd_sat: "شنبه", wd_sun: "یکشنبه",
  },
  en: {
    reports: "Reports",
    rp_last: "Last {n} days",
    rp_custom: "Custom",
    rp_from: "From",
    rp_to: "To",
    rp_apply: "Show",
    rp_by_day: "By day",
    rp_by_week: "By week",
    rp_group: "Group by",
    rp_all_channels: "All channels",
    rp_all_teams: "All teams",
    rp_all_agents: "All agents",
    rp_my_figures: "Your figures",
    rp_period: "{from} – {to}",
    rp_opened: "Conversations opened",
    rp_resolved: "Resolved",
    rp_first_response: "First response (median)",
    rp_resolution: "Resolution (median)",
    rp_p90: "90th percentile: {p90}",
    rp_breaches: "SLA breaches",
    rp_csat: "Customer satisfaction",
    rp_csat_detail: "{rate} answered ({answered} of {sent})",
    rp_bot: "Resolved by the bot",
    rp_bot_detail: "{handoff} handed over · of {n} bot conversations",
    rp_chart_volume: "Conversations opened and resolved",
    rp_chart_hours: "Busiest hours (customers' messages)",
    rp_chart_csat: "CSAT ratings",
    rp_by_channel: "By channel",
    rp_by_team: "By team",
    rp_by_agent: "By agent",
    rp_by_bucket: "Over time",
    rp_csv: "CSV",
    rp_download: "Download CSV: {name}",
    rp_none: "—",
    rp_no_team: "No team",
    rp_no_agent: "Unassigned",
    rp_total: "Total",
    rp_seconds: "{n} s",
    rp_minutes: "{n} min",
    rp_hours: "{h} h {m} min",
    rp_days: "{d} d {h} h",
    rp_forbidden: "This report is not yours to see",
    rp_loading: "Working it out…",
    rp_stars: "{n} stars",
    rp_timezone: "Time zone: {zone}",
    rp_col_opened: "Opened",
    rp_col_resolved: "Resolved",
    rp_col_frt: "First response (median)",
    rp_col_frt90: "First response (p90)",
    rp_col_resolution: "Resolution (median)",
    rp_col_resolution90: "Resolution (p90)",
    rp_col_breaches: "SLA breaches",
    rp_col_csat: "CSAT average",
    rp_col_csat_rate: "Survey response",
    rp_col_bot: "Bot resolution",
    rp_col_handoff: "Handoff",
    wd_mon: "Mon", wd_tue: "Tue", wd_wed: "Wed", wd_thu: "Thu", wd_fri: "Fri", wd_sat: "Sat", wd_sun: "Sun",
  },
});

const SVG_NS = "http://www.w3.org/2000/svg";
const PRESETS = [7, 30, 90];
const COLORS = { opened: "#2563eb", resolved: "#0f766e", heat: [15, 118, 110] };
const TABLE_COLUMNS = [
  ["opened", "rp_col_opened", "count"],
  ["resolved", "rp_col_resolved", "count"],
  ["first_response_median", "rp_col_frt", "duration"],
  ["first_response_p90", "rp_col_frt90", "duration"],
  ["resolution_median", "rp_col_resolution", "duration"],
  ["resolution_p90", "rp_col_resolution90", "duration"],
  ["breaches", "rp_col_breaches", "count"],
  ["csat_average", "rp_col_csat", "score"],
  ["csat_response_rate", "rp_col_csat_rate", "rate"],
  ["bot_resolution_rate", "rp_col_bot", "rate"],
  ["handoff_rate", "rp_col_handoff", "rate"],
];

// The page's own state survives re-renders (a language switch), not a reload.
const view = { days: 30, from: "", to: "", group: "day", channel: "", team: "", agent: "" };

// ---------------------------------------------------------------- formatting

function iso(day) {
  return day.toISOString().slice(0, 10);
}

function lastDays(n) {
  const end = new Date();
  const today = new Date(Date.UTC(end.getFullYear(), end.getMonth(), end.getDate()));
  const start = new Date(today.getTime() - (n - 1) * 86400000);
  return [iso(start), iso(today)];
}

// A local date (YYYY-MM-DD) in the reader's calendar: Jalali in Persian.
function day(key, options = { day: "numeric", month: "short" }) {
  const calendar = locale() === "fa" ? "fa-IR-u-ca-persian" : "en-GB";
  return new Intl.DateTimeFormat(calendar, { ...options, timeZone: "UTC" }).format(new Date(`${key}T12:00:00Z`));
}

function longDay(key) {
  return day(key, { day: "numeric", month: "long", year: "numeric" });
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return t("rp_none");
  const s = Math.round(seconds);
  if (s < 60) return t("rp_seconds", { n: num(s) });
  if (s < 3600) return t("rp_minutes", { n: num(Math.round(s / 60)) });
  if (s < 86400) return t("rp_hours", { h: num(Math.floor(s / 3600)), m: num(Math.floor((s % 3600) / 60)) });
  return t("rp_days", { d: num(Math.floor(s / 86400)), h: num(Math.floor((s % 86400) / 3600)) });
}

function rate(value) {
  if (value === null || value === undefined) return t("rp_none");
  return new Intl.NumberFormat(locale() === "fa" ? "fa-IR" : "en-US", { style: "percent", maximumFractionDigits: 1 }).format(value);
}

function score(value) {
  if (value === null || value === undefined) return t("rp_none");
  return new Intl.NumberFormat(locale() === "fa" ? "fa-IR" : "en-US", { maximumFractionDigits: 2 }).format(value);
}

function cell(kind, value) {
  if (kind === "duration") return duration(value);
  if (kind === "rate") return rate(value);
  if (kind === "score") return score(value);
  return num(value ?? 0);
}

// ---------------------------------------------------------------- requests

function query(extra = {}) {
  const [from, to] = view.days ? lastDays(view.days) : [view.from, view.to];
  const params = new URLSearchParams({ from, to, group: view.group, week_start: locale() === "fa" ? "sat" : "mon" });
  for (const key of ["channel", "team", "agent"]) if (view[key]) params.set(key, view[key]);
  for (const [key, value] of Object.entries(extra)) params.set(key, value);
  return params.toString();
}

function csvLink(name) {
  return h("a.btn.xs.ghost.csv-link", {
    href: `/api/v1/reports/${name}.csv?${query()}`,
    download: "",
    title: t("rp_download", { name }),
    "data-report": name,
  }, icon("note", 12), t("rp_csv"));
}

// ---------------------------------------------------------------- the page

export async function renderReports(container) {
  const body = h("div.reports-body", {}, h("p.muted", {}, t("rp_loading")));
  const head = h("div.reports-head", {}, h("h2.admin-title", {}, t("reports")));
  replace(container, h("div.reports", {}, head, body));
  let tables;
  try {
    // One request for every table: the server computes the breakdowns together.
    const page = await api.get(`/reports?${query()}`);
    const shared = { from: page.from, to: page.to, timezone: page.timezone, scope: page.scope };
    tables = Object.fromEntries(Object.entries(page.reports).map(([name, table]) => [name, { ...shared, ...table }]));
  } catch (error) {
    head.appendChild(controls(container));
    replace(body, h("p.notice.error", {}, error.status === 403 ? t("rp_forbidden") : t("failed", { error: error.message })));
    return;
  }
  const summary = tables.summary;
  for (const row of tables.channels.rows) seen.channels.add(row.key);
  if (!view.team && !view.agent) seen.teams = summary.scope.teams || [];
  head.appendChild(controls(container));
  replace(body,
    h("p.muted.small.period-line", {},
      t("rp_period", { from: longDay(summary.from), to: longDay(summary.to) }), " · ", t("rp_timezone", { zone: summary.timezone })),
    cards(summary.totals),
    h("div.report-charts", {},
      h("section.card.chart-card.wide", {}, chartHead("rp_chart_volume", "summary"), volumeChart(summary.rows)),
      h("section.card.chart-card", {}, chartHead("rp_chart_hours", "hours"), heatMap(tables.hours.rows)),
      h("section.card.chart-card", {}, chartHead("rp_chart_csat", "csat"), ratingBars(tables.csat.rows))),
    breakdown("rp_by_channel", "channels", tables.channels, (row) => channelName(row.key)),
    breakdown("rp_by_team", "teams", tables.teams, (row) => row.label || t("rp_no_team")),
    breakdown("rp_by_agent", "agents", tables.agents, (row) => row.label || t("rp_no_agent")),
    breakdown("rp_by_bucket", "summary", summary, (row) => day(row.key), { folded: true }));
}

// Channels that had figures, and the teams a lead may filter by (what the server scoped to).
const seen = { channels: new Set(), teams: [] };

function controls(container) {
  const again = () => renderReports(container);
  const presets = PRESETS.map((n) => h(`button.btn.xs${view.days === n ? ".primary" : ""}`, {
    "data-days": n,
    onclick: () => { view.days = n; again(); },
  }, t("rp_last", { n: num(n) })));
  const [defaultFrom, defaultTo] = lastDays(30);
  const from = h("input.input.xs", { type: "date", value: view.from || defaultFrom, "aria-label": t("rp_from"), name: "from" });
  const to = h("input.input.xs", { type: "date", value: view.to || defaultTo, "aria-label": t("rp_to"), name: "to" });
  const custom = h(`span.custom-period${view.days ? "" : ".active"}`, {},
    h("span.muted.small", {}, t("rp_custom")), from, to,
    h("button.btn.xs", { "data-apply": "", onclick: () => { view.days = 0; view.from = from.value; view.to = to.value; again(); } }, t("rp_apply")));
  const select = (name, options, blank) => {
    const node = h("select.select.xs", { name, "aria-label": blank },
      h("option", { value: "" }, blank),
      options.map(([value, label]) => h("option", { value, selected: String(view[name]) === String(value) }, label)));
    node.addEventListener("change", () => { view[name] = node.value; again(); });
    return node;
  };
  const group = h("select.select.xs", { name: "group", "aria-label": t("rp_group") },
    h("option", { value: "day", selected: view.group === "day" }, t("rp_by_day")),
    h("option", { value: "week", selected: view.group === "week" }, t("rp_by_week")));
  group.addEventListener("change", () => { view.group = group.value; again(); });
  const admin = state.me?.role === "admin";
  if (view.channel) seen.channels.add(view.channel);
  const channels = [...seen.channels].sort().map((name) => [name, channelName(name)]);
  const teams = (state.teams || []).filter((team) => admin || seen.teams.includes(team.id));
  const agents = admin
    ? state.agents
    : state.agents.filter((a) => (a.team_ids || []).some((id) => seen.teams.includes(id)));
  return h("div.report-controls", {},
    h("div.btn-group", {}, presets), custom, group,
    channels.length ? select("channel", channels, t("rp_all_channels")) : null,
    teams.length ? select("team", teams.map((team) => [team.id, team.name]), t("rp_all_teams")) : null,
    agents.length ? select("agent", agents.map((a) => [a.id, a.name || a.email]), t("rp_all_agents")) : null);
}

function chartHead(title, name) {
  return h("div.chart-head", {}, h("h3", {}, t(title)), csvLink(name));
}

function cards(totals) {
  const card = (title, value, detail, key) => h("div.stat-card", { "data-figure": key },
    h("div.stat-title", {}, t(title)), h("div.stat-value", {}, value), detail ? h("div.stat-detail.muted", {}, detail) : null);
  return h("div.stat-cards", {},
    card("rp_opened", num(totals.opened), null, "opened"),
    card("rp_resolved", num(totals.resolved), null, "resolved"),
    card("rp_first_response", duration(totals.first_response_median), t("rp_p90", { p90: duration(totals.first_response_p90) }), "first_response"),
    card("rp_resolution", duration(totals.resolution_median), t("rp_p90", { p90: duration(totals.resolution_p90) }), "resolution"),
    card("rp_breaches", num(totals.breaches), null, "breaches"),
    card("rp_csat", `${score(totals.csat_average)} / ${num(5)}`,
      t("rp_csat_detail", { rate: rate(totals.csat_response_rate), answered: num(totals.csat_answered), sent: num(totals.csat_sent) }), "csat"),
    card("rp_bot", rate(totals.bot_resolution_rate),
      t("rp_bot_detail", { handoff: rate(totals.handoff_rate), n: num(totals.bot_conversations) }), "bot"));
}

function breakdown(title, name, table, label, { folded = false } = {}) {
  const head = h("tr", {}, h("th", {}, ""), TABLE_COLUMNS.map(([, key]) => h("th", {}, t(key))));
  const line = (row, name) => h("tr", {}, h("td", {}, h("bdi", {}, name)),
    TABLE_COLUMNS.map(([key, , kind]) => h("td.num-cell", {}, cell(kind, row[key]))));
  const rows = h("div.table-scroll", {}, h("table.table", {},
    h("thead", {}, head),
    h("tbody", {}, table.rows.map((row) => line(row, label(row)))),
    h("tfoot", {}, line(table.totals, t("rp_total")))));
  if (folded) {  // one line a day or week: long, so it opens on request
    return h("section.card.report-table", { "data-report": name },
      h("details", {}, h("summary.chart-head", {}, h("h3", {}, t(title)), csvLink(name)), rows));
  }
  return h("section.card.report-table", { "data-report": name },
    h("div.chart-head", {}, h("h3", {}, t(title)), csvLink(name)), rows);
}

// ---------------------------------------------------------------- charts (inline SVG)

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  // Positions are computed for each direction here, so text anchors must not flip with the page.
  if (tag === "svg") node.setAttribute("direction", "ltr");
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function rtl() {
  return locale() === "fa";
}

// x of slot i of n across width w: time runs right to left in Persian.
function slotX(i, n, width, pad) {
  const step = (width - 2 * pad) / n;
  return rtl() ? width - pad - step * (i + 1) : pad + step * i;
}

function volumeChart(rows) {
  const width = 760, height = 220, pad = 34, base = height - 28;
  const top = Math.max(1, ...rows.map((r) => Math.max(r.opened, r.resolved)));
  const step = (width - 2 * pad) / Math.max(1, rows.length);
  const bar = Math.max(1, step / 2 - 1.5);
  const scale = (v) => (v / top) * (base - 14);
  const every = Math.ceil(rows.length / 10);
  const parts = [svg("line", { x1: pad, x2: width - pad, y1: base, y2: base, class: "axis" })];
  for (const tick of new Set([Math.round(top / 2), top])) {
    const y = base - scale(tick);
    parts.push(svg("line", { x1: pad, x2: width - pad, y1: y, y2: y, class: "grid" }),
      svg("text", { x: rtl() ? width - pad + 4 : pad - 4, y: y + 4, "text-anchor": rtl() ? "start" : "end", class: "tick" }, num(tick)));
  }
  rows.forEach((row, i) => {
    const x = slotX(i, rows.length, width, pad);
    const [first, second] = rtl() ? ["resolved", "opened"] : ["opened", "resolved"];
    for (const [offset, key] of [[1, first], [1 + bar + 1, second]]) {
      parts.push(svg("rect", { x: x + offset, y: base - scale(row[key]), width: bar, height: scale(row[key]), fill: COLORS[key], rx: 1.5, "data-series": key },
        svg("title", {}, `${day(row.key)} — ${t(key === "opened" ? "rp_opened" : "rp_resolved")}: ${num(row[key])}`)));
    }
    if (i % every === 0) parts.push(svg("text", { x: x + step / 2, y: base + 16, "text-anchor": "middle", class: "tick" }, day(row.key)));
  });
  return h("div.chart", {},
    svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart-svg volume-chart", role: "img", "aria-label": t("rp_chart_volume") }, parts),
    h("div.legend", {},
      h("span.key", {}, h("i", { style: `background:${COLORS.opened}` }), t("rp_opened")),
      h("span.key", {}, h("i", { style: `background:${COLORS.resolved}` }), t("rp_resolved"))));
}

function heatMap(rows) {
  const cellW = 22, cellH = 26, left = 70, topPad = 18;
  const width = left + 24 * cellW + 6, height = topPad + rows.length * cellH + 4;
  const hours = Array.from({ length: 24 }, (_, i) => `h${String(i).padStart(2, "0")}`);
  const most = Math.max(1, ...rows.flatMap((row) => hours.map((key) => row[key])));
  const [r, g, b] = COLORS.heat;
  const x = (i) => (rtl() ? width - left - (i + 1) * cellW : left + i * cellW);
  const parts = [];
  hours.forEach((_, i) => {
    if (i % 3 === 0) parts.push(svg("text", { x: x(i) + cellW / 2, y: 12, "text-anchor": "middle", class: "tick" }, num(i)));
  });
  rows.forEach((row, j) => {
    const y = topPad + j * cellH;
    parts.push(svg("text", { x: rtl() ? width - left + 8 : left - 8, y: y + cellH / 2 + 4, "text-anchor": rtl() ? "start" : "end", class: "tick" }, t(`wd_${row.key}`)));
    hours.forEach((key, i) => {
      const value = row[key];
      const alpha = value ? 0.12 + 0.88 * (value / most) : 0.04;
      parts.push(svg("rect", { x: x(i) + 1, y: y + 1, width: cellW - 2, height: cellH - 2, rx: 3, fill: `rgba(${r},${g},${b},${alpha.toFixed(3)})`, "data-count": value },
        svg("title", {}, `${t(`wd_${row.key}`)} ${num(i)}:${num(0)}${num(0)} — ${num(value)}`)));
    });
  });
  return h("div.chart", {}, svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart-svg heat-map", role: "img", "aria-label": t("rp_chart_hours") }, parts));
}

function ratingBars(rows) {
  const width = 360, height = 190, pad = 30, base = height - 26;
  const most = Math.max(1, ...rows.map((row) => row.count));
  const colors = ["#dc2626", "#f97316", "#eab308", "#65a30d", "#15803d"];
  const parts = [svg("line", { x1: pad, x2: width - pad, y1: base, y2: base, class: "axis" })];
  rows.forEach((row, i) => {
    const x = slotX(i, rows.length, width, pad);
    const step = (width - 2 * pad) / rows.length;
    const tall = (row.count / most) * (base - 22);
    parts.push(
      svg("rect", { x: x + step * 0.18, y: base - tall, width: step * 0.64, height: tall, rx: 3, fill: colors[i], "data-rating": row.key },
        svg("title", {}, `${t("rp_stars", { n: num(row.key) })}: ${num(row.count)}`)),
      svg("text", { x: x + step / 2, y: base - tall - 5, "text-anchor": "middle", class: "tick value" }, num(row.count)),
      svg("text", { x: x + step / 2, y: base + 16, "text-anchor": "middle", class: "tick" }, `${num(row.key)}★`));
  });
  return h("div.chart", {}, svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart-svg rating-bars", role: "img", "aria-label": t("rp_chart_csat") }, parts));
}
