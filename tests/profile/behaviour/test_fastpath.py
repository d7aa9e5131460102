"""The msgspec fast path against the pydantic path: same events accepted, same rows and views.

``service.parse`` takes a batch through ``fastpath.decode`` when msgspec accepts all of it, and
through pydantic (``service.parse_slowly``) otherwise. The fast path may refuse more than
pydantic (that only costs time) but never less, and must read every value the same way.
"""

from __future__ import annotations

import copy
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from crm_profile.behaviour import fastpath, service
from crm_profile.events import InteractionsRecordedV1, InteractionV1
from tests.profile.behaviour.conftest import INTERACTION, event, send, stored
from tests.profile.behaviour.test_endpoints import BAD, FULL, MINIMAL
from tests.profile.conftest import published

CUSTOMERS = {"c-ev-1": uuid.uuid4(), "c.2:x@y-z_": uuid.uuid4()}
LINKED = {"anon-1": uuid.uuid4()}
NOW = datetime.now(UTC).replace(microsecond=654321)
#: Forms of ``occurred_at`` the fast path reads itself (all within the accepted window).
FAST_TIMES = [
    NOW.isoformat(),
    NOW.replace(microsecond=0).isoformat(),
    NOW.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    NOW.isoformat().replace("+00:00", "Z"),
    NOW.isoformat().replace("+00:00", "-00:00"),
    NOW.replace(microsecond=500000).isoformat()[:21] + "Z",  # one fraction digit
    NOW.replace(microsecond=0).isoformat()[:19] + ".000000+00:00",
    NOW.astimezone(UTC).replace(tzinfo=None).isoformat() + "+00:00",
    (NOW + timedelta(hours=1)).replace(tzinfo=None).isoformat() + "+01:00",
    (NOW - timedelta(hours=5, minutes=30)).replace(tzinfo=None).isoformat(timespec="milliseconds")
    + "-05:30",
]
#: Forms pydantic accepts that the fast path leaves to it (read differently, or not at all).
SLOW_TIMES = [
    NOW.isoformat()[:26] + "7+00:00",  # 7 fraction digits: msgspec would round, pydantic cuts
    NOW.isoformat()[:16] + "Z",  # no seconds
    NOW.isoformat()[:19] + ",5Z",
    NOW.isoformat().replace("T", " "),
    NOW.isoformat().replace("T", "t"),
    NOW.isoformat().replace("+00:00", "+0000"),
    int(NOW.timestamp()),
]


def variants() -> list[dict[str, Any]]:
    """Good events of every type: full and minimal properties, every fast time form, identities."""
    items = []
    for i, type_ in enumerate(sorted(FULL)):
        for j, properties in enumerate((FULL[type_][0], MINIMAL[type_])):
            item = event(type_, properties, occurred_at=FAST_TIMES[(2 * i + j) % len(FAST_TIMES)])
            if j:
                item.pop("customer_external_id")
                item["anonymous_id"] = "anon-1" if i % 2 else f"anon-{i}"
            elif i % 3 == 0:
                item["customer_external_id"] = "c.2:x@y-z_"
                item["anonymous_id"] = "anon-1"
            items.append(item)
    items.append(event("checkout_started", {}))
    items.append(event("sign_in", {}))
    items.append(
        event("add_to_cart", {"sku": "S", "quantity": 2, "unit_price_minor": None}, customer="c")
    )
    items.append(event("product_view", {"sku": "S", "category": None}))
    items.append(event("page_view", {"title": "", "k" * 64: "v" * 256, "n": None, "f": 1.5}))
    items.append(event("app_open", {f"k{i}": i % 2 == 0 for i in range(20)}))
    for moment in FAST_TIMES:
        items.append(event("sign_in", occurred_at=moment))
    return items


def body(items: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"events": items})


def outputs(parsed: service.Parsed) -> tuple[Any, ...]:
    """What a parsed batch turns into: rejections, admitted views and rows (properties as data)."""
    fresh, duplicates = service._admit(parsed, datetime.now(UTC))
    views, rows = service._views_and_rows(fresh, CUSTOMERS, LINKED)
    rows_as_data = [(*row[:9], orjson.loads(row[9])) for row in rows]
    rejected = [r.model_dump() for r in sorted(parsed.rejected, key=lambda r: r.index)]
    payload = orjson.loads(service._envelope(views).body())
    return rejected, duplicates, payload, rows_as_data


class TestSamePathResults:
    def test_every_type_and_time_form_takes_the_fast_path_with_pydantics_result(self):
        raw = body(variants())
        assert fastpath.decode(raw) is not None
        fast, slow = outputs(service.parse(raw)), outputs(service.parse_slowly(raw))
        assert fast == slow
        rejected, duplicates, payload, rows = fast
        assert (rejected, duplicates, len(rows)) == ([], 0, len(variants()))
        InteractionsRecordedV1.model_validate(payload)

    def test_published_json_is_what_the_views_as_dicts_would_give(self):
        raw = body(variants())
        fresh, _ = service._admit(service.parse(raw), datetime.now(UTC))
        views, _ = service._views_and_rows(fresh, CUSTOMERS, LINKED)
        as_dicts = {
            "interactions": [
                {f: value for f in v.__struct_fields__ if (value := getattr(v, f)) is not None}
                for v in views
            ]
        }
        assert service._envelope(views).body() == orjson.dumps(as_dicts)
        assert service.View.__struct_fields__ == tuple(InteractionV1.model_fields)
        assert b"null" not in service._envelope(views).body()

    @pytest.mark.parametrize("moment", SLOW_TIMES, ids=str)
    def test_times_msgspec_would_read_otherwise_are_left_to_pydantic(self, moment):
        raw = body([event("sign_in", occurred_at=moment), *variants()])
        assert fastpath.decode(raw) is None
        parsed = service.parse(raw)
        assert parsed.rejected == []
        assert outputs(parsed) == outputs(service.parse_slowly(raw))

    def test_a_batch_mixing_good_and_bad_events_of_every_type(self):
        good = variants()
        bad = [event(type_, properties) for type_, properties, _ in BAD]
        items = [x for pair in zip(good, bad, strict=False) for x in pair]
        items += good[len(bad) :] + bad[len(good) :]
        raw = body(items)
        assert fastpath.decode(raw) is None
        parsed = service.parse(raw)
        assert sorted(r.index for r in parsed.rejected) == [
            i for i, item in enumerate(items) if item in bad
        ]
        # The good events come out of the slow path exactly as from the fast path alone.
        _, _, payload, rows = outputs(parsed)
        _, _, fast_payload, fast_rows = outputs(service.parse(body(good)))
        assert (payload, rows) == (fast_payload, fast_rows)


def refused_by_pydantic(item: Any) -> bool:
    try:
        service._EVENT.validate_python(orjson.loads(orjson.dumps(item)))
    except ValidationError:
        return True
    return False


#: Events pydantic refuses, each alone in a batch: the fast path must refuse them too.
REFUSED = [
    *(event(type_, properties) for type_, properties, _ in BAD),
    event("app_open", event_id="ev-1\n"),
    event("app_open", event_id="ev 1"),
    event("app_open", event_id="év-1"),
    event("app_open", event_id=""),
    event("app_open", event_id="x" * 129),
    event("app_open", customer="c-1\n"),
    event("app_open", customer="c 1"),
    event("app_open", customer="x" * 129),
    event("app_open", customer=None, anonymous_id="a\n"),
    event("app_open", customer=None, anonymous_id=""),
    event("app_open", occurred_at=NOW.isoformat()[:19]),
    event("app_open", occurred_at=NOW.isoformat() + "\n"),
    event("app_open", occurred_at="2026-02-30T10:00:00Z"),
    event("app_open", occurred_at="2026-11-23T24:00:00Z"),
    event("app_open", occurred_at="2026-11-23T10:00:00+24:00"),
    event("app_open", occurred_at=NOW.isoformat().replace("2", "\u0662")),  # Arabic-Indic 2
    event("app_open", user_id="u-1"),
    event("wishlist_added"),
    event("checkout_started", {"currency": "EUR\n"}),
    event("complaint_filed", {"topic": "x", "order_external_id": "o-1\n"}),
    event("page_view", {"url": 5}),
    event("page_view", {"url": ""}),
    event("page_view", {"title": "t" * 257}),
    event("app_open", {"screen": ["home"]}),
    event("app_open", {"platform": ""}),
    {**event("checkout_started"), "properties": None},
    event("sign_in", {"method": True}),
    event("search", {"query": "q", "results_count": True}),
    event("search", {"query": "q", "results_count": 10**9 + 1}),
    event("add_to_cart", {"sku": "S", "quantity": 2.0}),
    event("add_to_cart", {"sku": "S", "quantity": 1, "unit_price_minor": 10**12 + 1}),
    event("checkout_started", {"skus": ["S"] * 501}),
    {
        "event_id": "e",
        "type": "app_open",
        "occurred_at": NOW.isoformat(),
        "customer_external_id": 5,
    },
    42,
]


class TestRefusals:
    def test_an_integer_beyond_64_bits_is_refused_by_both(self):
        huge = event("search", {"query": "q", "results_count": 0})
        raw = orjson.dumps({"events": [huge]}).replace(
            b'"results_count":0', b'"results_count":' + str(2**70).encode()
        )
        assert fastpath.decode(raw) is None
        with pytest.raises(ValidationError):
            service._EVENT.validate_json(
                orjson.dumps(huge).replace(b":0}", b":" + str(2**70).encode() + b"}")
            )

    @pytest.mark.parametrize("item", REFUSED, ids=lambda item: str(item)[:80])
    def test_what_pydantic_refuses_the_fast_path_refuses(self, item):
        assert refused_by_pydantic(item)
        assert fastpath.decode(body([*variants(), item])) is None

    @pytest.mark.parametrize(
        "raw",
        [
            b'{"events": []}',
            b'{"events": [' + b",".join([orjson.dumps(event("sign_in"))] * 1001) + b"]}",
            b'{"events": {}}',
            b'{"events": [], "extra": 1}',
            b"[]",
            b'{"events": [',
            b'{"events": [{"event_id": "\\ud800"}]}',
            b'{"events": [{"properties": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}]}",
        ],
    )
    def test_a_body_that_is_not_a_valid_batch_is_left_to_pydantic(self, raw):
        assert fastpath.decode(raw) is None

    def test_random_mutations_never_pass_the_fast_path_alone(self):
        """Fuzz: every batch msgspec accepts, pydantic accepts, with the same result."""
        rnd = random.Random(20261123)
        values: list[Any] = [
            None, True, 0, -1, 1, 5, 6, 10**12, 10**15 + 1, 1.5, "", "x", "EUR", "eur",
            "a b", "a\n", "S-1", "x" * 33, "x" * 65, "x" * 129, "x" * 257, [], ["S"], {}, {"a": 1},
        ]  # fmt: skip
        base = variants()
        fast_accepted = 0
        for _ in range(3000):
            item = copy.deepcopy(rnd.choice(base))
            target = item.setdefault("properties", {}) if rnd.random() < 0.7 else item
            if not isinstance(target, dict):
                continue
            keys = [
                *target,
                "sku",
                "quantity",
                "rating",
                "extra",
                "currency",
                "customer_external_id",
            ]
            target[rnd.choice(keys)] = rnd.choice(values)
            raw = body([item])
            if fastpath.decode(raw) is None:
                continue
            fast_accepted += 1
            assert not refused_by_pydantic(item), item
            assert outputs(service.parse(raw)) == outputs(service.parse_slowly(raw)), item
        assert fast_accepted > 300


class TestThroughTheApi:
    async def test_both_paths_store_and_publish_the_same(self, client, session, monkeypatch):
        fast_items = variants()
        slow_items = [{**item, "event_id": f"slow-{item['event_id']}"} for item in fast_items]
        assert (await send(client, *fast_items)).json()["accepted"] == len(fast_items)
        monkeypatch.setattr(fastpath, "decode", lambda body: None)
        assert (await send(client, *slow_items)).json()["accepted"] == len(slow_items)
        fast_rows = await stored(session, *(i["event_id"] for i in fast_items))
        slow_rows = await stored(session, *(i["event_id"] for i in slow_items))
        columns = (
            "type", "customer_id", "customer_external_id", "anonymous_id", "occurred_at", "sku",
            "category", "value_minor", "properties",
        )  # fmt: skip
        for item in fast_items:
            fast, slow = fast_rows[item["event_id"]], slow_rows[f"slow-{item['event_id']}"]
            assert [getattr(fast, c) for c in columns] == [getattr(slow, c) for c in columns]
        fast_message, slow_message = await published(session, INTERACTION)
        for view in slow_message["interactions"]:
            view["event_id"] = view["event_id"].removeprefix("slow-")
        assert fast_message == slow_message


@pytest.mark.parametrize("sent", FAST_TIMES)
def test_the_published_time_is_isoformat_of_the_time_read(sent):
    occurred_at = datetime.fromisoformat(sent)
    assert service._isoformat(sent, occurred_at) == occurred_at.isoformat()


async def test_a_body_nested_too_deep_is_still_a_400(client):
    item = orjson.dumps(event("page_view", {"x": 1})).replace(
        b"1}", b"[" * 5000 + b"]" * 5000 + b"}"
    )
    response = await client.post("/v1/events", content=b'{"events": [' + item + b"]}")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "json_invalid"
