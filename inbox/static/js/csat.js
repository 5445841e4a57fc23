// Customer satisfaction in the inbox: the rating on a conversation's thread, the customer's
// ratings in the 360° panel, and the title of a low-score notification.

import { h } from "./dom.js";
import { addStrings, num, shortTime, t } from "./i18n.js";

addStrings({
  fa: {
    csat_title: "رضایت مشتری",
    csat_rated: "امتیاز مشتری: {rating} از ۵",
    csat_waiting: "نظرسنجی فرستاده شد؛ هنوز پاسخی نیامده",
    csat_expired: "نظرسنجی بی‌پاسخ ماند",
    csat_low_note: "امتیاز پایین",
    csat_low_title: "امتیاز پایین از مشتری",
    csat_average: "میانگین {average} از {count} پاسخ",
    csat_none: "هنوز امتیازی نداده است",
  },
  en: {
    csat_title: "Customer satisfaction",
    csat_rated: "Customer rating: {rating} out of 5",
    csat_waiting: "Survey sent; no answer yet",
    csat_expired: "The survey went unanswered",
    csat_low_note: "Low score",
    csat_low_title: "Low score from a customer",
    csat_average: "Average {average} from {count} answers",
    csat_none: "No ratings yet",
  },
});

/** Below this a rating is drawn in red (the server's `low` says what the configuration calls
 * low; older answers without it fall back to the default of 2). */
function isLow(csat) {
  return typeof csat.low === "boolean" ? csat.low : csat.rating <= 2;
}

function stars(rating) {
  return h("span.csat-stars", { "aria-hidden": "true", dir: "ltr", style: "letter-spacing:1px" }, "★".repeat(rating) + "☆".repeat(5 - rating));
}

/** The conversation's survey at the end of its thread: stars and comment, red when low. */
export function csatCard(csat) {
  if (!csat) return null;
  if (csat.rating === null || csat.rating === undefined) {
    return h("div.activity.csat-card", { dataset: { status: csat.status } },
      h("span", {}, t(csat.status === "expired" ? "csat_expired" : "csat_waiting")));
  }
  const low = isLow(csat);
  const colour = low ? "#b91c1c" : "#b45309";
  return h("div.csat-card", {
    dataset: { rating: String(csat.rating), low: low ? "1" : "0" },
    role: "note",
    "aria-label": t("csat_rated", { rating: num(csat.rating) }),
    style: `margin:.75rem auto;max-width:28rem;padding:.6rem .9rem;border-radius:10px;border:1px solid ${low ? "#fecaca" : "#fde68a"};background:${low ? "#fef2f2" : "#fffbeb"};color:${colour}`,
  },
  h("div", { style: "display:flex;gap:.5rem;align-items:center;flex-wrap:wrap" },
    h("strong", {}, t("csat_title")),
    stars(csat.rating),
    h("span", {}, t("csat_rated", { rating: num(csat.rating) })),
    low ? h("span.tag", { style: "background:#b91c1c;color:#fff;border-radius:6px;padding:0 .4rem" }, t("csat_low_note")) : null,
    csat.answered_at ? h("time.muted.small", {}, shortTime(csat.answered_at)) : null),
  csat.comment ? h("p.csat-comment", { dir: "auto", style: "margin:.4rem 0 0;color:#1f2937" }, csat.comment) : null);
}

/** The 360° panel's section body: average and the latest ratings. */
export function csatSummary(summary) {
  if (!summary || !summary.answered) return h("p.muted.small", {}, t("csat_none"));
  return h("div.csat-summary", {},
    h("p.small", {}, t("csat_average", { average: num(summary.average), count: num(summary.answered) })),
    h("ul.plain", {}, (summary.latest || []).map((s) =>
      h("li", { dataset: { rating: String(s.rating) }, style: `color:${isLow(s) ? "#b91c1c" : "inherit"}` },
        stars(s.rating), " ",
        s.comment ? h("span.small", { dir: "auto" }, s.comment.slice(0, 80)) : null,
        " ", h("time.muted.small", {}, shortTime(s.answered_at))))));
}
