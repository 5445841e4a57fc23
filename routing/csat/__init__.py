"""Customer satisfaction surveys: asked when a conversation is resolved, on the channel the
customer used, and answered there (buttons or a digit in a chat) or by a signed email link.

`Surveys` is a reaction (`routing.events.Reaction`) to `conversation.status_changed` → resolved.
It asks only when the conversation's channel is in `routing.csat.channels`, the customer was
not asked within `quiet_hours`, and an agent wrote a public reply in it: a conversation the
bot answered alone, or one resolved as spam without a word to the customer, is not rated (the
rating would say nothing about anyone's work). `take_answers` is the router's hook: a
customer's message that answers an open survey is stored in the resolved conversation and
does not reopen it. A rating at or below `low_score` notifies the team's leads and the
assignee; it never reopens anything.

Modules: `links` (signed links), `asking` (buttons or links per channel, the survey's
messages), `surveys` (the reaction), `answers` (recording a rating or comment), `chat`
(answers in a chat) and `views` (how surveys are shown)."""

from routing.csat.answers import MAX_COMMENT, record_comment, record_rating
from routing.csat.asking import Mode, customer_language, say, survey_modes, texts
from routing.csat.chat import COMMENT_KEY, rating_in, take_answers
from routing.csat.links import (
    KEY_NAME,
    KEY_OWNER,
    LINK_PATH,
    link_key,
    sign,
    stored_link_key,
    verify,
)
from routing.csat.surveys import Surveys
from routing.csat.views import (
    LATEST_RATINGS,
    conversation_csat,
    csat_summary,
    csat_view,
    customer_csat,
)

__all__ = [
    "COMMENT_KEY",
    "KEY_NAME",
    "KEY_OWNER",
    "LATEST_RATINGS",
    "LINK_PATH",
    "MAX_COMMENT",
    "Mode",
    "Surveys",
    "conversation_csat",
    "csat_summary",
    "csat_view",
    "customer_csat",
    "customer_language",
    "link_key",
    "rating_in",
    "record_comment",
    "record_rating",
    "say",
    "sign",
    "stored_link_key",
    "survey_modes",
    "take_answers",
    "texts",
    "verify",
]
