"""docs/events.md against the code: published events, payload fields, producers and consumers.

The parser and the comparison are tested on small inline catalogues and fake event types as
well, so that this file proves it would catch a drift even while the live catalogue is empty.
"""

from __future__ import annotations

import importlib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from crm_common.events import EventType, Subscription, validate_subject

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "docs" / "events.md"
SERVICES = sorted(
    p.name for p in (ROOT / "services").iterdir() if (p / f"crm_{p.name}" / "events.py").is_file()
)

_SERVICE = r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*"
_FIELD = r"[A-Za-z_][A-Za-z0-9_]*"
_ATTRIBUTE = re.compile(r"^- (?P<key>[a-z]+): (?P<value>.*\S)\s*$")
_ROW_NAME = re.compile(rf"^(?P<parent>{_FIELD})(?:\[\])?\.(?P<child>{_FIELD})$|^(?P<top>{_FIELD})$")
_DURABLE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
ATTRIBUTES = ("producer", "consumers", "version")


class CatalogueError(ValueError):
    """docs/events.md does not follow its own format."""


@dataclass
class Entry:
    """One event of the catalogue."""

    subject: str
    line: int
    producer: str = ""
    consumers: frozenset[str] = frozenset()
    version: int = 0
    fields: list[str] = field(default_factory=list)
    nested: dict[str, list[str]] = field(default_factory=dict)


# --- parsing -------------------------------------------------------------------------------


def _events_section(text: str) -> list[tuple[int, str]]:
    """Numbered lines of the ``## Events`` section, fenced code blocks left out."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.rstrip() == "## Events"]
    if len(starts) != 1:
        raise CatalogueError("the catalogue needs exactly one '## Events' section")
    section: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(lines[starts[0] + 1 :], start=starts[0] + 2):
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if line.startswith("## ") or line.startswith("# "):
            break
        section.append((number, line.rstrip()))
    return section


def _cells(number: int, line: str) -> list[str]:
    """Cells of a ``| a | b | c |`` row."""
    if not line.endswith("|"):
        raise CatalogueError(f"line {number}: a table row must end with '|'")
    return [c.strip() for c in line.strip("|").split("|")]


def _attribute(entry: Entry, number: int, key: str, value: str) -> None:
    """Apply one ``- key: value`` line to ``entry``."""
    if key == "producer":
        if not re.fullmatch(_SERVICE, value):
            raise CatalogueError(f"line {number}: producer {value!r} is not a service name")
        entry.producer = value
    elif key == "consumers":
        names = [] if value == "none" else [v.strip() for v in value.split(",")]
        if any(not re.fullmatch(_SERVICE, n) for n in names) or len(set(names)) != len(names):
            raise CatalogueError(
                f"line {number}: consumers must be distinct service names or 'none'"
            )
        entry.consumers = frozenset(names)
    else:
        match = re.fullmatch(r"v([1-9][0-9]*)", value)
        if match is None:
            raise CatalogueError(f"line {number}: version must look like v1")
        entry.version = int(match[1])


def _table(entry: Entry, rows: list[tuple[int, str]]) -> None:
    """Read the payload table's rows into ``entry.fields`` and ``entry.nested``."""
    (header_no, header), *rest = rows
    if _cells(header_no, header) != ["field", "type", "description"]:
        raise CatalogueError(
            f"line {header_no}: table header must be | field | type | description |"
        )
    if not rest or not all(re.fullmatch(r":?-{3,}:?", c) for c in _cells(*rest[0])):
        raise CatalogueError(f"line {header_no + 1}: the header needs a |---|---|---| separator")
    seen: set[str] = set()
    for number, line in rest[1:]:
        cells = _cells(number, line)
        if len(cells) != 3 or not all(cells):
            raise CatalogueError(f"line {number}: a row needs a field, a type and a description")
        name = cells[0]
        match = _ROW_NAME.match(name)
        if match is None or name in seen:
            raise CatalogueError(f"line {number}: bad or repeated field name {name!r}")
        seen.add(name)
        if match["top"]:
            entry.fields.append(name)
        else:
            entry.nested.setdefault(match["parent"], []).append(match["child"])
    missing_parents = set(entry.nested) - set(entry.fields)
    if missing_parents:
        raise CatalogueError(
            f"{entry.subject}: nested rows under undocumented field(s) {sorted(missing_parents)}"
        )


def _entry(number: int, subject: str, body: list[tuple[int, str]]) -> Entry:
    """Parse one ``### subject`` block."""
    try:
        validate_subject(subject)
    except ValueError as exc:
        raise CatalogueError(f"line {number}: {exc}") from exc
    entry = Entry(subject=subject, line=number)
    keys: list[str] = []
    table: list[tuple[int, str]] = []
    table_done = False
    for line_no, line in body:
        if line.startswith("|"):
            if table_done:
                raise CatalogueError(f"line {line_no}: {subject} has more than one table")
            table.append((line_no, line))
            continue
        if table:
            table_done = True
        attribute = _ATTRIBUTE.match(line)
        if line.startswith("- ") and (attribute is None or attribute["key"] not in ATTRIBUTES):
            raise CatalogueError(f"line {line_no}: unknown attribute line {line!r}")
        if attribute is not None:
            if table:
                raise CatalogueError(f"line {line_no}: attributes must come before the table")
            keys.append(attribute["key"])
            _attribute(entry, line_no, attribute["key"], attribute["value"])
    if tuple(keys) != ATTRIBUTES:
        raise CatalogueError(
            f"line {number}: {subject} needs '- producer', '- consumers', '- version' in that order"
        )
    if entry.producer != subject.split(".")[1]:
        raise CatalogueError(f"line {number}: producer of {subject} must be its service token")
    if not table:
        raise CatalogueError(f"line {number}: {subject} has no payload table")
    _table(entry, table)
    return entry


def parse_catalogue(text: str) -> dict[str, Entry]:
    """Every entry of the ``## Events`` section, by subject; raises ``CatalogueError``."""
    blocks: list[tuple[int, str, list[tuple[int, str]]]] = []
    for number, line in _events_section(text):
        if line.startswith("###"):
            if not line.startswith("### ") or line.startswith("####"):
                raise CatalogueError(f"line {number}: an event heading is '### <subject>'")
            blocks.append((number, line[4:].strip(), []))
        elif blocks:
            blocks[-1][2].append((number, line))
        elif line.startswith(("|", "- ")):
            raise CatalogueError(f"line {number}: attributes or table outside an event")
    catalogue: dict[str, Entry] = {}
    for number, subject, body in blocks:
        if subject in catalogue:
            raise CatalogueError(f"line {number}: {subject} is listed twice")
        catalogue[subject] = _entry(number, subject, body)
    return catalogue


# --- comparison ----------------------------------------------------------------------------


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` is one or more tokens."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return index == len(wanted) - 1 and len(tokens) > index
        if index >= len(tokens) or token not in ("*", tokens[index]):
            return False
    return len(wanted) == len(tokens)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``Model``, ``Model | None``, ``list[Model]`` and the like."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            model = _nested_model(arg)
            if model is not None:
                return model
    return None


def _compare_fields(entry: Entry, event: EventType[Any]) -> list[str]:
    """Payload table against the payload model (and documented nested models)."""
    problems: list[str] = []
    model_fields = event.payload.model_fields
    documented, declared = set(entry.fields), set(model_fields)
    if documented != declared:
        problems.append(
            f"{entry.subject}: payload fields differ from {event.payload.__name__}: "
            f"missing from the catalogue {sorted(declared - documented)}, "
            f"not in the model {sorted(documented - declared)}"
        )
    for parent, children in entry.nested.items():
        info = model_fields.get(parent)
        model = _nested_model(info.annotation) if info is not None else None
        if info is not None and model is None:
            problems.append(f"{entry.subject}: {parent} is not an object, it has no nested fields")
        elif model is not None and set(children) != set(model.model_fields):
            problems.append(
                f"{entry.subject}: nested fields of {parent} differ from {model.__name__}: "
                f"catalogue {sorted(children)}, model {sorted(model.model_fields)}"
            )
    return problems


def _compare_subscriptions(
    published: Mapping[str, EventType[Any]], subscriptions: Mapping[str, Sequence[Subscription]]
) -> list[str]:
    """Every subscription matches a published event and has a conventional, unique durable."""
    problems: list[str] = []
    durables: dict[str, str] = {}
    for service, subs in subscriptions.items():
        for sub in subs:
            producer = sub.subject.split(".")[1] if sub.subject.count(".") else ""
            if not any(subject_matches(sub.subject, s) for s in published):
                problems.append(f"{service}: subscription {sub.subject} matches no published event")
            if producer in ("", "*", ">"):
                problems.append(f"{service}: subscription {sub.subject} must name its producer")
            prefix = f"{service}-{producer}-"
            if not (sub.durable.startswith(prefix) and _DURABLE.match(sub.durable[len(prefix) :])):
                problems.append(
                    f"{service}: durable {sub.durable!r} is not <consumer>-<producer>-<purpose> "
                    f"({prefix}...)"
                )
            if sub.durable in durables:
                problems.append(
                    f"{service}: durable {sub.durable!r} also used by {durables[sub.durable]}"
                )
            durables[sub.durable] = service
    return problems


def compare(
    catalogue: Mapping[str, Entry],
    published: Mapping[str, Sequence[EventType[Any]]],
    subscriptions: Mapping[str, Sequence[Subscription]],
) -> list[str]:
    """Every disagreement between the catalogue and the services' declarations."""
    problems: list[str] = []
    events: dict[str, EventType[Any]] = {}
    declared_by: dict[str, str] = {}
    for service, declared in published.items():
        for event in declared:
            if event.subject in events:
                problems.append(
                    f"{event.subject}: declared twice ({declared_by[event.subject]}, {service})"
                )
            if event.service != service:
                problems.append(f"{event.subject}: declared by {service}, outside its own subjects")
            events[event.subject] = event
            declared_by[event.subject] = service
    for subject in sorted(events.keys() - catalogue.keys()):
        problems.append(f"{subject}: published by {declared_by[subject]} but not in the catalogue")
    for subject in sorted(catalogue.keys() - events.keys()):
        problems.append(f"{subject}: in the catalogue but no service publishes it")
    for subject in sorted(catalogue.keys() & events.keys()):
        entry, event = catalogue[subject], events[subject]
        if entry.producer != declared_by[subject]:
            problems.append(
                f"{subject}: catalogue producer {entry.producer}, declared by {declared_by[subject]}"
            )
        if entry.version != event.version:
            problems.append(f"{subject}: catalogue version v{entry.version}, code v{event.version}")
        problems += _compare_fields(entry, event)
        consumers = {
            service
            for service, subs in subscriptions.items()
            if any(subject_matches(sub.subject, subject) for sub in subs)
        }
        if entry.consumers != consumers:
            problems.append(
                f"{subject}: catalogue consumers {sorted(entry.consumers) or 'none'}, "
                f"subscribed by {sorted(consumers) or 'none'}"
            )
    return problems + _compare_subscriptions(events, subscriptions)


# --- the live catalogue ----------------------------------------------------------------------


def live_declarations() -> tuple[dict[str, list[Any]], dict[str, list[Subscription]]]:
    """Every service's ``PUBLISHED`` and ``SUBSCRIPTIONS``."""
    published = {s: list(importlib.import_module(f"crm_{s}.events").PUBLISHED) for s in SERVICES}
    subscriptions = {
        s: list(importlib.import_module(f"crm_{s}.consumers").SUBSCRIPTIONS) for s in SERVICES
    }
    return published, subscriptions


class TestLiveCatalogue:
    def test_every_service_is_checked(self):
        assert SERVICES == ["loyalty", "notify", "profile", "recommend", "segment"]

    def test_declarations_are_well_typed(self):
        published, subscriptions = live_declarations()
        for service in SERVICES:
            assert all(isinstance(e, EventType) for e in published[service]), service
            assert all(issubclass(e.payload, BaseModel) for e in published[service]), service
            assert all(isinstance(s, Subscription) for s in subscriptions[service]), service

    def test_catalogue_matches_the_code(self):
        catalogue = parse_catalogue(CATALOGUE.read_text())
        published, subscriptions = live_declarations()
        problems = compare(catalogue, published, subscriptions)
        assert not problems, "docs/events.md disagrees with the code:\n" + "\n".join(problems)

    def test_documented_example_follows_the_format(self):
        """The example entry shown in docs/events.md is itself valid."""
        text = CATALOGUE.read_text()
        example = re.search(r"## Format of an entry.*?```markdown\n(.*?)```", text, re.S)
        assert example is not None
        entries = parse_catalogue("## Events\n\n" + example[1])
        assert list(entries) == ["crm.example.order.placed"]
        assert entries["crm.example.order.placed"].nested == {"lines": ["sku", "quantity"]}


# --- the checker itself, on samples -----------------------------------------------------------


class _Line(BaseModel):
    sku: str
    quantity: int


class _Placed(BaseModel):
    order_id: str
    total_minor: int
    lines: list[_Line]


class _Changed(BaseModel):
    customer_id: str
    segment: str | None = None


PLACED = EventType("crm.alpha.order.placed", _Placed)
CHANGED = EventType("crm.beta.membership.changed", _Changed, version=2)


async def _noop(session: Any, envelope: Any) -> None:
    """A handler that does nothing."""


SAMPLE = """\
# Sample

## Conventions

### crm.not.an.event

Anything outside the Events section is ignored.

## Events

### crm.alpha.order.placed

- producer: alpha
- consumers: beta, gamma
- version: v1

An order was placed.

| field | type | description |
|---|---|---|
| order_id | string | id |
| total_minor | integer | total |
| lines | array of object | lines |
| lines[].sku | string | SKU |
| lines[].quantity | integer | how many |

### crm.beta.membership.changed

- producer: beta
- consumers: none
- version: v2

| field | type | description |
|---|---|---|
| customer_id | string | who |
| segment | string or null | which |

## Afterwards

### crm.ignored.thing.happened
"""

PUBLISHED: dict[str, list[EventType[Any]]] = {"alpha": [PLACED], "beta": [CHANGED], "gamma": []}
SUBSCRIPTIONS: dict[str, list[Subscription]] = {
    "alpha": [],
    "beta": [Subscription("crm.alpha.order.placed", "beta-alpha-orders", _noop)],
    "gamma": [Subscription("crm.alpha.>", "gamma-alpha-everything", _noop)],
}


def problems_of(markdown: str = SAMPLE, published=None, subscriptions=None) -> list[str]:
    """Compare a markdown sample with sample declarations."""
    return compare(
        parse_catalogue(markdown),
        PUBLISHED if published is None else published,
        SUBSCRIPTIONS if subscriptions is None else subscriptions,
    )


def _without_block(markdown: str, subject: str) -> str:
    """``markdown`` minus the entry for ``subject``."""
    start = markdown.index(f"### {subject}")
    end = markdown.find("\n###", start + 1)
    end2 = markdown.find("\n## ", start + 1)
    stop = min(e for e in (end, end2) if e != -1)
    return markdown[:start] + markdown[stop + 1 :]


class TestSubjectMatches:
    @pytest.mark.parametrize(
        ("pattern", "subject", "expected"),
        [
            ("crm.a.b.c", "crm.a.b.c", True),
            ("crm.a.b.c", "crm.a.b.d", False),
            ("crm.a.*.c", "crm.a.x.c", True),
            ("crm.a.*", "crm.a.b.c", False),
            ("crm.a.>", "crm.a.b.c", True),
            ("crm.a.>", "crm.a", False),
            ("crm.*.b.>", "crm.z.b.c", True),
            ("crm.a.b.c.d", "crm.a.b.c", False),
            ("crm.a.b", "crm.a.b.c", False),
            (">", "crm.a.b.c", True),
        ],
    )
    def test_nats_semantics(self, pattern, subject, expected):
        assert subject_matches(pattern, subject) is expected


class TestParser:
    def test_sample_is_read_whole(self):
        entries = parse_catalogue(SAMPLE)
        assert list(entries) == ["crm.alpha.order.placed", "crm.beta.membership.changed"]
        placed = entries["crm.alpha.order.placed"]
        assert placed.producer == "alpha"
        assert placed.consumers == {"beta", "gamma"}
        assert placed.version == 1
        assert placed.fields == ["order_id", "total_minor", "lines"]
        assert placed.nested == {"lines": ["sku", "quantity"]}
        assert entries["crm.beta.membership.changed"].consumers == frozenset()

    def test_empty_events_section(self):
        assert parse_catalogue("# X\n\n## Events\n\nNothing yet.\n") == {}

    @pytest.mark.parametrize(
        ("before", "after", "message"),
        [
            ("## Events", "## Evnts", "exactly one '## Events'"),
            ("### crm.beta.membership.changed", "### crm.beta.membership.change", "past-tense"),
            ("### crm.beta.membership.changed", "### `crm.beta.membership.changed`", "not crm."),
            ("- producer: beta\n", "", "in that order"),
            ("- version: v2", "- version: 2", "version must look like v1"),
            ("- consumers: none", "- consumers: gamma, gamma", "distinct"),
            ("- consumers: none", "- consumers: none\n- owner: beta", "unknown attribute"),
            ("- producer: beta", "- producer: alpha", "must be its service token"),
            (
                "| field | type | description |\n|---|---|---|\n| customer_id",
                "| customer_id",
                "table header",
            ),
            ("| segment | string or null | which |", "| segment | | which |", "a row needs"),
            (
                "| segment | string or null | which |",
                "| customer_id | string | again |",
                "repeated",
            ),
            ("| lines[].sku", "| items[].sku", "undocumented field"),
            (
                "| segment | string or null | which |",
                "| segment | string or null | which |\n- version: v2",
                "attributes must come before the table",
            ),
            (
                "| segment | string or null | which |",
                "| segment | string or null | which |\n\nNote.\n\n| a | b | c |",
                "more than one table",
            ),
            (
                "### crm.beta.membership.changed",
                "#### crm.beta.membership.changed",
                "'### <subject>'",
            ),
        ],
    )
    def test_format_errors_are_refused(self, before, after, message):
        assert before in SAMPLE
        with pytest.raises(CatalogueError, match=re.escape(message)):
            parse_catalogue(SAMPLE.replace(before, after, 1))

    def test_missing_table_is_refused(self):
        broken = SAMPLE.replace(
            "| field | type | description |\n|---|---|---|\n| customer_id | string | who |\n"
            "| segment | string or null | which |\n",
            "",
        )
        with pytest.raises(CatalogueError, match="no payload table"):
            parse_catalogue(broken)

    def test_duplicate_entry_is_refused(self):
        block = SAMPLE[SAMPLE.index("### crm.beta") : SAMPLE.index("## Afterwards")]
        with pytest.raises(CatalogueError, match="listed twice"):
            parse_catalogue(SAMPLE.replace("## Afterwards", block + "## Afterwards"))


class TestCompare:
    def test_consistent_sample_has_no_problems(self):
        assert problems_of() == []

    def test_missing_event(self):
        problems = problems_of(_without_block(SAMPLE, "crm.beta.membership.changed"))
        assert problems == [
            "crm.beta.membership.changed: published by beta but not in the catalogue"
        ]

    def test_extra_event(self):
        published = {**PUBLISHED, "beta": []}
        assert problems_of(published=published) == [
            "crm.beta.membership.changed: in the catalogue but no service publishes it"
        ]

    def test_wrong_field(self):
        problems = problems_of(SAMPLE.replace("| total_minor |", "| total |"))
        assert len(problems) == 1
        assert "missing from the catalogue ['total_minor']" in problems[0]
        assert "not in the model ['total']" in problems[0]

    def test_missing_field(self):
        problems = problems_of(SAMPLE.replace("| segment | string or null | which |\n", ""))
        assert problems == [
            "crm.beta.membership.changed: payload fields differ from _Changed: "
            "missing from the catalogue ['segment'], not in the model []"
        ]

    def test_wrong_nested_field(self):
        problems = problems_of(SAMPLE.replace("| lines[].quantity |", "| lines[].qty |"))
        assert len(problems) == 1
        assert "nested fields of lines differ from _Line" in problems[0]

    def test_nested_rows_under_a_scalar(self):
        markdown = SAMPLE.replace(
            "| total_minor | integer | total |\n",
            "| total_minor | integer | total |\n| total_minor.cents | integer | no |\n",
        )
        assert problems_of(markdown) == [
            "crm.alpha.order.placed: total_minor is not an object, it has no nested fields"
        ]

    def test_wrong_consumer(self):
        problems = problems_of(SAMPLE.replace("- consumers: beta, gamma", "- consumers: beta"))
        assert problems == [
            "crm.alpha.order.placed: catalogue consumers ['beta'], subscribed by ['beta', 'gamma']"
        ]

    def test_consumer_listed_but_not_subscribed(self):
        markdown = SAMPLE.replace("- consumers: none", "- consumers: alpha")
        assert problems_of(markdown) == [
            "crm.beta.membership.changed: catalogue consumers ['alpha'], subscribed by none"
        ]

    def test_wildcard_subscription_makes_a_consumer(self):
        subscriptions = {
            **SUBSCRIPTIONS,
            "alpha": [Subscription("crm.beta.*.changed", "alpha-beta-changes", _noop)],
        }
        problems = problems_of(subscriptions=subscriptions)
        assert problems == [
            "crm.beta.membership.changed: catalogue consumers none, subscribed by ['alpha']"
        ]
        markdown = SAMPLE.replace("- consumers: none", "- consumers: alpha")
        assert problems_of(markdown, subscriptions=subscriptions) == []

    def test_wrong_producer(self):
        published = {"alpha": [PLACED, CHANGED], "beta": [], "gamma": []}
        problems = problems_of(published=published)
        assert (
            "crm.beta.membership.changed: declared by alpha, outside its own subjects" in problems
        )
        assert "crm.beta.membership.changed: catalogue producer beta, declared by alpha" in problems

    def test_wrong_version(self):
        problems = problems_of(SAMPLE.replace("- version: v2", "- version: v1"))
        assert problems == ["crm.beta.membership.changed: catalogue version v1, code v2"]

    def test_event_declared_twice(self):
        published = {**PUBLISHED, "gamma": [PLACED]}
        problems = problems_of(published=published)
        assert "crm.alpha.order.placed: declared twice (alpha, gamma)" in problems

    def test_dangling_subscription(self):
        subscriptions = {
            **SUBSCRIPTIONS,
            "alpha": [Subscription("crm.beta.membership.removed", "alpha-beta-removals", _noop)],
        }
        assert problems_of(subscriptions=subscriptions) == [
            "alpha: subscription crm.beta.membership.removed matches no published event"
        ]

    def test_durable_naming(self):
        subscriptions = {
            **SUBSCRIPTIONS,
            "beta": [Subscription("crm.alpha.order.placed", "orders-of-alpha", _noop)],
        }
        problems = problems_of(subscriptions=subscriptions)
        assert problems == [
            "beta: durable 'orders-of-alpha' is not <consumer>-<producer>-<purpose> (beta-alpha-...)"
        ]

    def test_duplicate_durable(self):
        subscriptions = {
            **SUBSCRIPTIONS,
            "beta": [
                Subscription("crm.alpha.order.placed", "beta-alpha-orders", _noop),
                Subscription("crm.alpha.>", "beta-alpha-orders", _noop),
            ],
        }
        assert problems_of(subscriptions=subscriptions) == [
            "beta: durable 'beta-alpha-orders' also used by beta"
        ]

    def test_subscription_without_a_literal_producer(self):
        subscriptions = {
            **SUBSCRIPTIONS,
            "alpha": [Subscription("crm.*.>", "alpha-all-all", _noop)],
        }
        problems = problems_of(subscriptions=subscriptions)
        assert "alpha: subscription crm.*.> must name its producer" in problems
