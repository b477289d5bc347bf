"""Statistics and the table of `make bench`: pure functions, tested on given numbers
(tests/scripts/test_bench_report.py)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

CEILING, PEER, GATEHOUSE = "ceiling", "peer", "gatehouse"
TARGETS = (CEILING, PEER, GATEHOUSE)
# (scenario, what the table calls it, who has it). The peer has no refresh: fastapi-users' JWT
# backend issues one access token and nothing to renew it with.
SCENARIOS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("health", "`GET /health/live`", (CEILING, PEER, GATEHOUSE)),
    ("me", "`GET /users/me`", (PEER, GATEHOUSE)),
    ("refresh", "`POST /auth/jwt/refresh`", (GATEHOUSE,)),
    ("login", "`POST /auth/jwt/login`", (PEER, GATEHOUSE)),
    ("register", "`POST /auth/register`", (PEER, GATEHOUSE)),
)


@dataclass(frozen=True)
class RoundResult:
    """One wrk run: successful answers in `seconds`, their latency percentiles, failures."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    client_cpu: float | None = None  # the Python load generator's CPU, in cores

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Summary:
    """Medians over the rounds (each statistic on its own), and every round's failures."""

    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    rounds: int


def summarize(rounds: Sequence[RoundResult]) -> Summary:
    if not rounds:
        raise ValueError("no rounds to summarize")
    return Summary(
        rate=statistics.median(r.rate for r in rounds),
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p99_ms=statistics.median(r.p99_ms for r in rounds),
        errors=sum(r.errors for r in rounds),
        rounds=len(rounds),
    )


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest sample with at least q% of the samples at or below it."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


@dataclass(frozen=True)
class StallRound:
    """bench_auth's measure on one server: the stall ratio and the logins per second."""

    stall: float
    logins_per_second: float


@dataclass
class Results:
    """Everything one database's run measured."""

    rounds: dict[tuple[str, str], list[RoundResult]] = field(default_factory=dict)
    stall: dict[str, list[StallRound]] = field(default_factory=dict)
    hash_bound: float = 0.0  # logins/s: cores / CPU seconds of one verify

    def add(self, target: str, scenario: str, result: RoundResult) -> None:
        self.rounds.setdefault((target, scenario), []).append(result)

    def summary(self, target: str, scenario: str) -> Summary | None:
        rounds = self.rounds.get((target, scenario))
        return summarize(rounds) if rounds else None

    def rate(self, target: str, scenario: str) -> float | None:
        found = self.summary(target, scenario)
        return found.rate if found else None

    def stall_ratio(self, target: str) -> float | None:
        rounds = self.stall.get(target)
        return statistics.median(r.stall for r in rounds) if rounds else None

    def share_of_hash_bound(self, target: str) -> float | None:
        rounds = self.stall.get(target)
        if not rounds:
            return None
        return ratio(statistics.median(r.logins_per_second for r in rounds), self.hash_bound)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _times(value: float | None) -> str:
    if value is not None and value < 0.01:
        return "<0.01×"  # noqa: RUF001 - the times sign, on purpose
    return "—" if value is None else f"{value:.2f}×"  # noqa: RUF001 - the times sign, on purpose


def cell(found: Summary | None) -> str:
    if found is None:
        return "—"
    if found.rate == 0:
        return "**0** (none completed)" + (f" ⚠ {found.errors} failed" if found.errors else "")
    text = f"**{_number(found.rate)}** ({_ms(found.p50_ms)} / {_ms(found.p99_ms)})"
    return text + (f" ⚠ {found.errors} failed" if found.errors else "")


def table(results: Results) -> str:
    """The page's table: req/s (p50 / p99 ms) per request and server, then the ratios."""
    ceiling = results.rate(CEILING, "health")
    lines = [
        "| request | ceiling: bare FastAPI | peer: stock fastapi-users 15 | Gatehouse "
        "| Gatehouse ÷ peer | peer ÷ ceiling | Gatehouse ÷ ceiling |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario, label, _ in SCENARIOS:
        peer, ours = results.rate(PEER, scenario), results.rate(GATEHOUSE, scenario)
        cells = [cell(results.summary(target, scenario)) for target in TARGETS]
        if scenario == "refresh":
            cells[1] = "— (fastapi-users has no refresh)"
        ratios = [ratio(ours, peer), ratio(peer, ceiling), ratio(ours, ceiling)]
        lines.append(f"| {label} | " + " | ".join(cells + [_times(r) for r in ratios]) + " |")
    stall_peer, stall_ours = results.stall_ratio(PEER), results.stall_ratio(GATEHOUSE)
    lines.append(
        "| stall ratio: `/health/live` p99 during 20 concurrent logins ÷ idle p99 (target ≤ 10) "
        f"| — | {_fixed(stall_peer)} | {_fixed(stall_ours)} | | | |"
    )
    share_peer = results.share_of_hash_bound(PEER)
    share_ours = results.share_of_hash_bound(GATEHOUSE)
    lines.append(
        f"| logins/s ÷ hash-bound limit ({results.hash_bound:.1f}/s) during that burst "
        f"(target ≥ 90%) | — | {_percent(share_peer)} | {_percent(share_ours)} | | | |"
    )
    return "\n".join(lines)


def _fixed(value: float | None) -> str:
    return "—" if value is None else f"**{value:.1f}**"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"**{value:.0%}**"


@dataclass(frozen=True)
class Target:
    text: str
    value: float | None
    threshold: float
    at_most: bool = False  # the value must stay at or below the threshold

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.threshold if self.at_most else self.value >= self.threshold


def targets(results: Results) -> list[Target]:
    """Issue 10's targets, on one run's numbers."""
    ours_health = results.rate(GATEHOUSE, "health")
    return [
        Target(
            "`GET /users/me`: Gatehouse ÷ peer ≥ 2.0",
            ratio(results.rate(GATEHOUSE, "me"), results.rate(PEER, "me")),
            2.0,
        ),
        Target(
            "`GET /users/me` ÷ Gatehouse's `/health/live` ≥ 0.40",
            ratio(results.rate(GATEHOUSE, "me"), ours_health),
            0.40,
        ),
        Target(
            "Gatehouse's `/health/live` ÷ ceiling ≥ 0.80",
            ratio(ours_health, results.rate(CEILING, "health")),
            0.80,
        ),
        Target(
            "logins/s ÷ hash-bound limit ≥ 0.90",
            results.share_of_hash_bound(GATEHOUSE),
            0.90,
        ),
        Target("stall ratio ≤ 10", results.stall_ratio(GATEHOUSE), 10.0, at_most=True),
    ]


def targets_list(results: Results) -> str:
    lines = []
    for target in targets(results):
        if target.met is None:
            lines.append(f"- {target.text}: not measured")
        else:
            verdict = "met" if target.met else "**not met**"
            lines.append(f"- {target.text}: {target.value:.2f} — {verdict}")
    return "\n".join(lines)


def section_markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def get_section(page: str, name: str) -> str | None:
    start, end = section_markers(name)
    if start not in page or end not in page:
        return None
    return page[page.index(start) : page.index(end) + len(end)]


def put_section(page: str, name: str, body: str) -> str:
    """`page` with the named section (markers included) replaced, or appended if absent."""
    start, end = section_markers(name)
    block = f"{start}\n{body.strip()}\n{end}"
    old = get_section(page, name)
    if old is None:
        return page.rstrip() + "\n\n" + block + "\n"
    return page.replace(old, block)


def rewrite_page(page: str | None, name: str, body: str) -> str:
    """The benchmarks page with only the named section rewritten: what people wrote around
    the generated sections (the profile, the explanation of a gap) stays as it is."""
    return put_section(page if page is not None else "# Benchmarks\n", name, body)
