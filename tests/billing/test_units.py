"""Pure pieces of billing: the pricing arithmetic, quotes, plan checks, percentiles, time parsing,
the finance CSV, and which Stripe the SDK talks to."""

from __future__ import annotations

import csv
import io

import pytest

from dreamforge.grpcio import InvalidArgument
from services.billing.plans import BUILTIN_PLANS, Plan, billable, check_plan, quote
from services.billing.reports import check_group_by, nearest_rank, parse_time
from services.billing.settings import BillingSettings
from services.billing.stripe_worker import make_client
from services.gateway.billing_client import report_csv
from services.gateway.schemas import billing as s

PLANS = {p.id: p for p in BUILTIN_PLANS}


def test_billable_images_are_those_beyond_what_is_left_of_the_allowance() -> None:
    assert [billable(1, used, 3) for used in range(5)] == [0, 0, 0, 1, 1]
    assert billable(5, 1, 3) == 3 and billable(2, 0, 0) == 2 and billable(0, 9, 3) == 0


def test_quote_by_hand_on_the_research_plan() -> None:
    q = quote(PLANS["research"], {"detect": 1500, "caption": 1000, "chat": 600})
    # caption 1000 inside 2000 free; detect 500 over 1000 x 2 = 1000; chat 100 over 500 x 3 = 300
    assert [(x.skill, x.billable_images, x.amount_minor_units) for x in q.lines] == [
        ("caption", 0, 0), ("detect", 500, 1000), ("chat", 100, 300)]
    assert (q.total_minor_units, q.total_images, q.within_limit) == (1300, 3100, True)
    assert not quote(PLANS["free"], {"caption": 1001}).within_limit
    with pytest.raises(InvalidArgument, match="juggle"):
        quote(PLANS["payg"], {"juggle": 1})


@pytest.mark.parametrize(("field", "plan"), [
    ("`id`", Plan("Bad Id", "x", "usd")),
    ("`currency`", Plan("ok", "x", "USD")),
    ("unit_price_minor_units.caption", Plan("ok", "x", "usd", unit_price_minor_units={"caption": 10**7})),
    ("`limit_status`", Plan("ok", "x", "usd", limit_status=500)),
])
def test_plan_checks_name_the_field(field: str, plan: Plan) -> None:
    with pytest.raises(InvalidArgument, match=field.replace(".", r"\.")):
        check_plan(plan)


def test_nearest_rank_percentiles_match_percentile_disc() -> None:
    values = [10.0, 20.0, 30.0, 40.0, 50.0]
    assert (nearest_rank(values, 0.5), nearest_rank(values, 0.95), nearest_rank(values, 0.2)) == (30.0, 50.0, 10.0)
    assert nearest_rank([], 0.5) == 0.0 and nearest_rank([7.0], 0.95) == 7.0


def test_times_and_dimensions_are_checked() -> None:
    assert parse_time("2026-12-01", "from").isoformat() == "2026-12-01T00:00:00+00:00"  # type: ignore[union-attr]
    assert parse_time("2026-12-01T10:00:00+02:00", "to").hour == 8  # type: ignore[union-attr]
    assert parse_time(" ", "from") is None
    for bad in ("yesterday", "0001-01-01T00:00:00+05:00"):
        with pytest.raises(InvalidArgument, match="`from`"):
            parse_time(bad, "from")
    assert check_group_by(["tenant, day", "tenant", ""]) == ["tenant", "day"]
    with pytest.raises(InvalidArgument, match="group_by"):
        check_group_by(["weather"])


def test_csv_is_rfc4180_with_a_header_and_iso_dates() -> None:
    row = s.ReportRow(group={"model": 'a, "b"', "day": "2026-12-01"}, requests=2, images=3, billable_images=1,
                      input_tokens=4, output_tokens=5, cost_minor_units=6, latency_p50_ms=1.5, latency_p95_ms=2.0)
    text = report_csv(s.Report(group_by=["model", "day"], start="", end="", rows=[row]))
    assert text == ('model,day,requests,images,billable_images,input_tokens,output_tokens,cost_minor_units,'
                    'latency_p50_ms,latency_p95_ms,currency\r\n"a, ""b""",2026-12-01,2,3,1,4,5,6,1.5,2.0,usd\r\n')
    assert list(csv.reader(io.StringIO(text, newline="")))[1][0] == 'a, "b"'


def test_a_key_alone_means_real_stripe_and_a_base_url_means_that_server() -> None:
    assert make_client(BillingSettings(stripe_api_key="")) is None
    live = make_client(BillingSettings(stripe_api_key="sk_live_abc"))
    assert live is not None and live._requestor._options.base_addresses["api"] == "https://api.stripe.com"
    local = make_client(BillingSettings(stripe_api_key="sk_test_abc", stripe_api_base="http://127.0.0.1:9/"))
    assert local is not None and local._requestor._options.base_addresses["api"] == "http://127.0.0.1:9"
