"""The assignment policy on plain data: DESIGN.md's order, capacity, presence, ties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from routing.assignment import Candidate, choose_agent, pick_team
from routing.config import RuleConfig

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def agent(
    id: int,
    *,
    presence: str = "online",
    open_count: int = 0,
    capacity: int = 5,
    idle_minutes: int | None = None,
    teams: tuple[int, ...] = (1,),
    active: bool = True,
) -> Candidate:
    last = NOW - timedelta(minutes=idle_minutes) if idle_minutes is not None else None
    return Candidate(
        id=id,
        presence=presence,
        active=active,
        capacity=capacity,
        open_count=open_count,
        last_assigned_at=last,
        team_ids=frozenset(teams),
    )


def choose(**kwargs: object) -> tuple[int | None, str]:
    defaults: dict[str, object] = {"current_assignee": None, "owner_id": None, "team_id": 1}
    decision = choose_agent(**{**defaults, **kwargs})  # type: ignore[arg-type]
    return decision.agent_id, decision.reason


def test_keeps_the_current_assignee_even_when_full_or_away() -> None:
    team = [agent(1, presence="away", open_count=5), agent(2)]
    assert choose(current_assignee=1, candidates=team) == (1, "kept")


def test_an_offline_or_deactivated_assignee_is_replaced() -> None:
    assert choose(current_assignee=1, candidates=[agent(1, presence="offline"), agent(2)]) == (
        2,
        "least_loaded",
    )
    assert choose(current_assignee=1, candidates=[agent(1, active=False), agent(2)]) == (
        2,
        "least_loaded",
    )


def test_the_customers_owner_comes_before_the_least_loaded() -> None:
    team = [agent(1, open_count=4), agent(2, open_count=0)]
    assert choose(owner_id=1, candidates=team) == (1, "owner")


def test_an_owner_without_capacity_or_offline_is_passed_over() -> None:
    assert choose(owner_id=1, candidates=[agent(1, open_count=5), agent(2)]) == (2, "least_loaded")
    assert choose(owner_id=1, candidates=[agent(1, presence="away"), agent(2)]) == (
        2,
        "least_loaded",
    )


def test_the_owner_takes_it_even_outside_the_conversations_team() -> None:
    assert choose(owner_id=7, team_id=1, candidates=[agent(7, teams=(2,)), agent(2)]) == (
        7,
        "owner",
    )


def test_least_open_conversations_wins_within_the_team() -> None:
    team = [agent(1, open_count=3), agent(2, open_count=1), agent(3, open_count=0, teams=(2,))]
    assert choose(candidates=team) == (2, "least_loaded")


def test_ties_go_to_the_agent_idle_longest_and_never_assigned_first() -> None:
    team = [agent(1, idle_minutes=5), agent(2, idle_minutes=50), agent(3, idle_minutes=20)]
    assert choose(candidates=team) == (2, "least_loaded")
    assert choose(candidates=[*team, agent(4)]) == (4, "least_loaded")


def test_full_away_and_offline_agents_take_nothing_new() -> None:
    team = [agent(1, open_count=5), agent(2, presence="away"), agent(3, presence="offline")]
    assert choose(candidates=team) == (None, "queued")


def test_without_a_team_everyone_available_is_a_candidate() -> None:
    assert choose(
        team_id=None,
        candidates=[agent(1, open_count=2, teams=()), agent(2, open_count=1, teams=(9,))],
    ) == (2, "least_loaded")


def test_rules_pick_the_first_matching_team_with_persian_normalization() -> None:
    rules = [
        RuleConfig(team="vip", customer_labels=("VIP",)),
        RuleConfig(team="sales", keywords=("قیمت", "price")),
        RuleConfig(team="telegram", channels=("tg",)),
        RuleConfig(team="english", language="en"),
    ]
    pick = lambda text, channel="contact", language="fa", labels=(): pick_team(  # noqa: E731
        rules, channel=channel, language=language, text=text, customer_labels=labels
    )
    assert pick("قيمت اين محصول چند است؟") == "sales"  # Arabic ي and ك forms
    assert pick("سلام", labels=("VIP",)) == "vip"
    assert pick("سلام", channel="tg") == "telegram"
    assert pick("hello", language="en") == "english"
    assert pick("سلام") is None


def test_a_team_nobody_belongs_to_does_not_strand_its_conversations() -> None:
    assert choose(team_id=5, candidates=[agent(1, teams=()), agent(2, teams=(9,))]) == (
        1,
        "least_loaded",
    )
