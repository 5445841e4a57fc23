"""Automation rules: when something happens to a conversation and every condition holds, the
rule's actions run, inside the transaction that recorded the event (a `routing.events.Reaction`).

A rule is plain data (what admins edit, `automation_rules` keeps as JSON): a trigger, typed
conditions and actions, each a small dict named by its `type`. The engine reads the enabled
rules of the triggers present in one query per unit of work (none when nothing happened that
a rule could match), so a change steers the next message in every process, with no cache.

No rule can loop: every event a rule's actions record carries `rule_id` in its data and is
never matched again, and a rule fires at most once per conversation and trigger in a unit of
work. A rule that fails rolls back alone (a savepoint) and leaves an `automation.failed` event;
the message that triggered it is kept.

Modules: `base` (triggers and shared types), `conditions`, `actions`, `spec` (a whole rule),
`run` (one round's reads) and `engine` (the reaction)."""

from routing.automation.actions import (
    Action,
    AssignAgent,
    AssignTeam,
    AssignTeamLead,
    CannedReply,
    ChangeLabels,
    Notify,
    Resolve,
    SetPriority,
    Snooze,
)
from routing.automation.base import MARK, TRIGGERS, AutomationError, Trigger
from routing.automation.conditions import (
    AttributeIs,
    BusinessHours,
    ChannelIs,
    Condition,
    LabelsAre,
    PriorityIs,
    SlaMetricIs,
    StatusIs,
    TeamIs,
    TextHas,
)
from routing.automation.engine import FIRED, automation, load_rules, trigger_of
from routing.automation.spec import LoadedRule, RuleSpec, loaded

__all__ = [
    "FIRED",
    "MARK",
    "TRIGGERS",
    "Action",
    "AssignAgent",
    "AssignTeam",
    "AssignTeamLead",
    "AttributeIs",
    "AutomationError",
    "BusinessHours",
    "CannedReply",
    "ChangeLabels",
    "ChannelIs",
    "Condition",
    "LabelsAre",
    "LoadedRule",
    "Notify",
    "PriorityIs",
    "Resolve",
    "RuleSpec",
    "SetPriority",
    "SlaMetricIs",
    "Snooze",
    "StatusIs",
    "TeamIs",
    "TextHas",
    "Trigger",
    "automation",
    "load_rules",
    "loaded",
    "trigger_of",
]
