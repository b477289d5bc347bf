"""`make bench`'s statistics and table on given numbers (the run itself is by hand: it takes
minutes and wants a quiet machine)."""

from __future__ import annotations

import pytest

from scripts import bench_auth
from scripts.bench.load import parse
from scripts.bench.report import (
    CEILING,
    GATEHOUSE,
    PEER,
    Results,
    RoundResult,
    StallRound,
    get_section,
    percentile,
    put_section,
    ratio,
    rewrite_page,
    summarize,
    table,
    targets,
    targets_list,
)


def times(value: str) -> str:
    return value + "\N{MULTIPLICATION SIGN}"


def rounds_at(*rates: float, p50: float = 1.0, p99: float = 2.0) -> list[RoundResult]:
    return [RoundResult(requests=int(r * 2), seconds=2.0, p50_ms=p50, p99_ms=p99) for r in rates]


def test_summary_takes_the_median_of_each_statistic_and_sums_failures() -> None:
    rounds = [
        RoundResult(requests=300, seconds=3.0, p50_ms=5.0, p99_ms=90.0, errors=1),  # 100/s
        RoundResult(requests=900, seconds=3.0, p50_ms=1.0, p99_ms=10.0),  # 300/s
        RoundResult(requests=400, seconds=2.0, p50_ms=3.0, p99_ms=30.0, errors=2),  # 200/s
    ]
    summary = summarize(rounds)
    assert summary.rate == 200.0
    assert summary.p50_ms == 3.0
    assert summary.p99_ms == 30.0
    assert summary.errors == 3
    assert summary.rounds == 3


def test_summary_of_an_even_number_of_rounds_averages_the_middle_two() -> None:
    assert summarize(rounds_at(100, 400, 200, 300)).rate == 250.0


def test_summary_refuses_no_rounds() -> None:
    with pytest.raises(ValueError, match="no rounds"):
        summarize([])


def test_ratio_is_undefined_without_both_numbers() -> None:
    assert ratio(600, 300) == 2.0
    assert ratio(None, 300) is None
    assert ratio(600, None) is None
    assert ratio(600, 0) is None


def test_percentile_is_the_nearest_rank() -> None:
    samples = [float(n) for n in range(100, 0, -1)]  # 1..100, unsorted
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


def sample_results() -> Results:
    results = Results(hash_bound=10.0)
    for ceiling in (1000.0, 1100.0, 900.0):
        results.add(CEILING, "health", rounds_at(ceiling)[0])
    for target, scenario, rates in [
        (PEER, "health", (800, 820, 780)),
        (GATEHOUSE, "health", (900, 850, 950)),
        (PEER, "me", (300, 310, 290)),
        (GATEHOUSE, "me", (60, 50, 70)),
        (GATEHOUSE, "refresh", (200, 210, 190)),
        (PEER, "login", (5.0, 5.5, 4.5)),
        (GATEHOUSE, "login", (6.0, 6.5, 5.5)),
        (PEER, "register", (4.0, 4.5, 3.5)),
        (GATEHOUSE, "register", (3.0, 3.5, 2.5)),
    ]:
        for rate in rates:
            results.add(target, scenario, rounds_at(rate)[0])
    results.stall[PEER] = [StallRound(40.0, 5.0), StallRound(60.0, 4.0), StallRound(50.0, 6.0)]
    results.stall[GATEHOUSE] = [StallRound(2.0, 6.0), StallRound(1.0, 8.0), StallRound(3.0, 7.0)]
    return results


def row(text: str, label: str) -> list[str]:
    [line] = [line for line in text.splitlines() if line.startswith(f"| {label}")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_table_rows_hold_medians_and_ratios() -> None:
    text = table(sample_results())
    assert row(text, "`GET /health/live`") == [
        "`GET /health/live`",
        "**1,000** (1.0 / 2.0)",
        "**800** (1.0 / 2.0)",
        "**900** (1.0 / 2.0)",
        times("1.12"),  # Gatehouse ÷ peer: 900 / 800
        times("0.80"),  # peer ÷ ceiling
        times("0.90"),  # Gatehouse ÷ ceiling
    ]
    me = row(text, "`GET /users/me`")
    assert me[1] == "—"  # the ceiling has no /users/me
    assert me[2:] == [
        "**300** (1.0 / 2.0)",
        "**60.0** (1.0 / 2.0)",
        times("0.20"),
        times("0.30"),
        times("0.06"),
    ]
    refresh = row(text, "`POST /auth/jwt/refresh`")
    assert refresh[2] == "— (fastapi-users has no refresh)"
    assert refresh[3:] == ["**200** (1.0 / 2.0)", "—", "—", times("0.20")]
    login = row(text, "`POST /auth/jwt/login`")
    assert login[4] == times("1.20")
    assert login[6] == "<" + times("0.01")  # 6 / 1000: not rounded to a zero ratio
    assert row(text, "stall ratio")[2:4] == ["**50.0**", "**2.0**"]
    # logins/s during the burst: medians 5.0 and 7.0 against the hash-bound 10/s.
    assert row(text, "logins/s ÷ hash-bound limit (10.0/s)")[2:4] == ["**50%**", "**70%**"]


def test_failed_requests_are_flagged_in_their_cell() -> None:
    results = sample_results()
    results.add(PEER, "register", RoundResult(4, 1.0, 1.0, 2.0, errors=3))
    assert "⚠ 3 failed" in row(table(results), "`POST /auth/register`")[2]


def test_targets_are_judged_on_the_medians() -> None:
    verdicts = {t.text.split(":")[0].split(" ≥")[0]: t for t in targets(sample_results())}
    me_vs_peer = verdicts["`GET /users/me`"]
    assert me_vs_peer.value == pytest.approx(0.2)
    assert me_vs_peer.met is False
    assert verdicts["`GET /users/me` ÷ Gatehouse's `/health/live`"].value == pytest.approx(60 / 900)
    assert verdicts["Gatehouse's `/health/live` ÷ ceiling"].met is True  # 0.90 >= 0.80
    assert verdicts["logins/s ÷ hash-bound limit"].met is False  # 0.70 < 0.90
    assert verdicts["stall ratio ≤ 10"].met is True  # 2.0 <= 10
    assert "0.20 — **not met**" in targets_list(sample_results())


def test_an_unmeasured_target_says_so() -> None:
    assert "stall ratio ≤ 10: not measured" in targets_list(Results(hash_bound=10.0))


def test_a_section_is_replaced_in_place_and_the_rest_of_the_page_kept() -> None:
    page = put_section("# Benchmarks\n", "bench", "old table")
    page = put_section(page, "bench-auth", "logins")
    page = put_section(page, "bench", "new table")
    assert page.index("new table") < page.index("logins")
    assert "old table" not in page
    assert get_section(page, "bench-auth") == (
        "<!-- bench-auth:start -->\nlogins\n<!-- bench-auth:end -->"
    )
    assert get_section(page, "missing") is None


def test_rewriting_the_page_keeps_what_was_written_around_the_sections() -> None:
    page = put_section("# Benchmarks\n", "bench", "old table")
    page += "\n## Profile\n\nwhere the time goes\n"
    page = put_section(page, "bench-auth", "logins")
    fresh = rewrite_page(page, "bench", "new table")
    assert "old table" not in fresh and "new table" in fresh
    assert "## Profile\n\nwhere the time goes" in fresh
    assert get_section(fresh, "bench-auth") == get_section(page, "bench-auth")
    assert fresh.index("new table") < fresh.index("where the time goes") < fresh.index("logins")
    assert rewrite_page(None, "bench", "t").startswith("# Benchmarks")


def test_wrk_result_counts_only_successful_answers() -> None:
    output = (
        "Running 3s test @ http://127.0.0.1:1\n"
        'BENCH-RESULT {"requests": 1000, "duration_us": 2000000, "status_errors": 100, '
        '"socket_errors": 2, "timeouts": 3, "p50_us": 1500, "p99_us": 9000}\n'
    )
    result = parse(output)
    assert result.requests == 900
    assert result.rate == 450.0
    assert (result.p50_ms, result.p99_ms) == (1.5, 9.0)
    assert result.errors == 105


def test_wrk_without_a_result_line_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no result"):
        parse("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_the_busy_warning_follows_the_load_before_the_run_not_the_runs_own() -> None:
    from scripts.bench.__main__ import busy_note

    cores = bench_auth.usable_cores()
    # A quiet host reads a high load after the run: the run's own servers and wrk.
    assert "quiet" in busy_note(0.0, cores * 2.0)
    assert "busy" in busy_note(cores * 1.0, 0.0)
