"""The one-click satisfaction page an email survey links to: `GET /csat/{token}?rating=N`
records the rating and thanks the customer, with a form for an optional comment that posts to
the same URL. Public (no login): the signed token is the only credential, so the page never
says why a token is refused, and a link answers once (the first rating wins)."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from sqlalchemy.orm import Session

from inbox.services import SERVICES
from routing.config import CsatConfig
from routing.csat import (
    MAX_COMMENT,
    csat_summary,
    record_comment,
    record_rating,
    stored_link_key,
    verify,
)
from routing.events import EventLog
from storage.models import Conversation, CsatSurvey

logger = logging.getLogger(__name__)

MAX_FORM_BYTES = 16 * 1024
Outcome = Literal["thanks", "answered", "expired", "unknown", "commented"]
_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_FA_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")

WORDS: dict[str, dict[str, str]] = {
    "fa": {
        "title": "نظرسنجی رضایت",
        "thanks": "از شما سپاسگزاریم! امتیاز {rating} از ۵ ثبت شد.",
        "comment_label": "اگر نکته‌ای دارید، برایمان بنویسید (اختیاری):",
        "send": "ارسال نظر",
        "commented": "نظر شما ثبت شد. سپاس که وقت گذاشتید.",
        "answered": "به این نظرسنجی پیش‌تر پاسخ داده شده است. سپاس از شما!",
        "expired": "مهلت پاسخ به این نظرسنجی به پایان رسیده است.",
        "unknown": "این پیوند معتبر نیست.",
        "bad_rating": "امتیاز باید عددی از ۱ تا ۵ باشد.",
        "bad_comment": "نظر شما بیش از اندازه بلند است یا نویسه‌های نامعتبر دارد.",
    },
    "en": {
        "title": "Satisfaction survey",
        "thanks": "Thank you! Your rating of {rating} out of 5 has been recorded.",
        "comment_label": "Anything you would like to add? (optional)",
        "send": "Send",
        "commented": "Your comment has been recorded. Thank you for your time.",
        "answered": "This survey has already been answered. Thank you!",
        "expired": "This survey is closed: the time to answer it has passed.",
        "unknown": "This link is not valid.",
        "bad_rating": "The rating must be a number from 1 to 5.",
        "bad_comment": "Your comment is too long or contains invalid characters.",
    },
}


@dataclass(frozen=True, slots=True)
class _Answer:
    outcome: Outcome
    rating: int | None = None


def _language(request: web.Request) -> str:
    return "en" if request.query.get("lang") == "en" else "fa"


def _rating(value: str | None) -> int | None:
    plain = (value or "").translate(_DIGITS).strip()
    return int(plain) if plain in ("1", "2", "3", "4", "5") else None


def _digits(text: str, language: str) -> str:
    return text.translate(_FA_DIGITS) if language == "fa" else text


def page(
    language: str,
    message: str,
    *,
    status: int = 200,
    rating: int | None = None,
    comment_to: str | None = None,
) -> web.Response:
    """The whole page: no script, inline CSS only, right to left in Persian."""
    words = WORDS[language]
    direction = "rtl" if language == "fa" else "ltr"
    stars = ""
    if rating is not None:
        filled = "★" * rating + "☆" * (5 - rating)
        stars = f'<p class="stars" aria-label="{rating}/5">{filled}</p>'
    form = ""
    if comment_to is not None:
        form = (
            f'<form method="post" action="{html.escape(comment_to)}">'
            f'<label for="comment">{html.escape(words["comment_label"])}</label>'
            f'<textarea id="comment" name="comment" rows="4" maxlength="{MAX_COMMENT}" '
            'dir="auto"></textarea>'
            f'<input type="hidden" name="lang" value="{language}">'
            f'<button type="submit">{html.escape(words["send"])}</button></form>'
        )
    body = (
        "<!DOCTYPE html>"
        f'<html lang="{language}" dir="{direction}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{html.escape(words['title'])}</title><style>"
        "body{font:16px/1.8 Vazirmatn,Tahoma,system-ui,sans-serif;background:#f3f4f6;"
        "color:#1f2937;margin:0;padding:2rem 1rem}"
        "main{max-width:32rem;margin:auto;background:#fff;border-radius:12px;padding:1.5rem;"
        "box-shadow:0 1px 3px #0002}h1{font-size:1.2rem;margin:0 0 1rem}"
        ".stars{font-size:2rem;color:#f59e0b;margin:.5rem 0;direction:ltr;text-align:center}"
        "label{display:block;margin:1rem 0 .5rem}textarea{width:100%;box-sizing:border-box;"
        "font:inherit;padding:.5rem;border:1px solid #d1d5db;border-radius:8px}"
        "button{margin-top:.75rem;font:inherit;padding:.4rem 1.2rem;border:0;border-radius:8px;"
        "background:#2563eb;color:#fff;cursor:pointer}"
        "</style></head><body><main>"
        f"<h1>{html.escape(words['title'])}</h1>{stars}"
        f'<p class="message">{html.escape(_digits(message, language))}</p>{form}'
        "</main></body></html>"
    )
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _survey(session: Session, token: str) -> CsatSurvey | None:
    """The survey a token opens; None for anything not signed by us (nothing is written)."""
    stored = stored_link_key(session)
    found = verify(bytes.fromhex(stored), token) if stored else None
    if found is None:
        return None
    survey = session.get(CsatSurvey, found[0], with_for_update=True)
    if survey is None or survey.nonce != found[1]:
        return None
    return survey


def _rate(
    session: Session, token: str, rating: int, config: CsatConfig, now: datetime
) -> tuple[_Answer, EventLog]:
    log = EventLog(session)
    survey = _survey(session, token)
    if survey is None:
        return _Answer("unknown"), log
    if survey.status == "answered":
        return _Answer("answered", survey.rating), log
    if survey.status != "sent" or now >= survey.expires_at:
        return _Answer("expired"), log
    conversation = session.get(Conversation, survey.conversation_id)
    assert conversation is not None  # a survey goes with its conversation (cascade)
    record_rating(session, log, survey, conversation, rating, config, now)
    return _Answer("thanks", rating), log


def _comment(session: Session, token: str, comment: str, now: datetime) -> tuple[_Answer, EventLog]:
    log = EventLog(session)
    survey = _survey(session, token)
    if survey is None:
        return _Answer("unknown"), log
    if survey.status != "answered":
        return _Answer("expired" if now >= survey.expires_at else "unknown"), log
    if survey.comment or now >= survey.expires_at:
        return _Answer("answered", survey.rating), log
    conversation = session.get(Conversation, survey.conversation_id)
    assert conversation is not None
    record_comment(session, log, survey, conversation, comment)
    logger.debug("survey %s commented: %s", survey.id, csat_summary(survey)["status"])
    return _Answer("commented", survey.rating), log


def _refusal(language: str, answer: _Answer) -> web.Response:
    words = WORDS[language]
    if answer.outcome == "unknown":
        return page(language, words["unknown"], status=404)
    if answer.outcome == "expired":
        return page(language, words["expired"], status=410)
    return page(language, words["answered"], rating=answer.rating)


async def rate(request: web.Request) -> web.StreamResponse:
    """`GET /csat/{token}?rating=N`: record the rating once; a reused link changes nothing."""
    services = request.app[SERVICES]
    language = _language(request)
    token = request.match_info["token"]
    rating = _rating(request.query.get("rating"))
    if rating is None:
        async with services.sessions() as session:
            known = await session.run_sync(_survey, token)
        if known is None:
            return page(language, WORDS[language]["unknown"], status=404)
        return page(language, WORDS[language]["bad_rating"], status=400)
    answer = await services.actions.run(
        _rate, token, rating, services.config.routing.csat, services.actions.now()
    )
    if answer.outcome != "thanks":
        return _refusal(language, answer)
    action = request.rel_url.path + ("?lang=en" if language == "en" else "")
    message = WORDS[language]["thanks"].format(rating=rating)
    return page(language, message, rating=rating, comment_to=action)


def _same_site(request: web.Request) -> bool:
    """A browser posting the form says where from: it must be this site (no cookies are
    involved, but a comment should come from the page the customer was shown)."""
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return True
    public = urlsplit(request.app[SERVICES].config.server.public_url).netloc
    return urlsplit(origin).netloc in (public, request.host)


async def comment(request: web.Request) -> web.StreamResponse:
    """`POST /csat/{token}`: the optional comment after a rating, once."""
    services = request.app[SERVICES]
    language = "en" if request.query.get("lang") == "en" else "fa"
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        return page(language, WORDS[language]["bad_comment"], status=413)
    if not _same_site(request):
        return page(language, WORDS[language]["unknown"], status=403)
    raw = await request.read()
    if len(raw) > MAX_FORM_BYTES:
        return page(language, WORDS[language]["bad_comment"], status=413)
    try:
        fields = parse_qs(raw.decode("utf-8"), strict_parsing=False, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return page(language, WORDS[language]["bad_comment"], status=400)
    if fields.get("lang", [""])[0] == "en":
        language = "en"
    text = (fields.get("comment") or [""])[0].strip()
    if len(text) > MAX_COMMENT or "\x00" in text:
        return page(language, WORDS[language]["bad_comment"], status=400)
    token = request.match_info["token"]
    if not text:
        async with services.sessions() as session:
            known = await session.run_sync(_survey, token)
        if known is None:
            return page(language, WORDS[language]["unknown"], status=404)
        return page(language, WORDS[language]["bad_comment"], status=400)
    answer = await services.actions.run(_comment, token, text, services.actions.now())
    if answer.outcome != "commented":
        return _refusal(language, answer)
    return page(language, WORDS[language]["commented"], rating=answer.rating)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/csat/{token}", rate)
    app.router.add_post("/csat/{token}", comment)
