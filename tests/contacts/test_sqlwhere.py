"""The SQL form of a condition selects exactly the contacts the Python evaluator says it holds for.

Hypothesis generates contacts (columns, custom fields of every type, tags, events) and conditions
(comparisons of every kind, date arithmetic with now/today, in/contains/starts/ends, is set, tags,
did … where … at least … within, calls of condition functions through their SQL forms, and/or/not);
for each, the ids ``server.sqlwhere`` selects on SQLite and PostgreSQL must equal those for which
``dsl.holds`` is true with the engine's context (which runs the functions' Python implementations).
"""

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

import dsl
from server.db import get_session
from server.engine.scope import Scope
from server.models import Contact, ContactTag, Event, FieldDefinition
from server.sdk import ConditionFunction
from server.sqlwhere import Unsupported, where
from server.sqlwhere.terms import COLUMN_KINDS, IN_PYTHON

UTC = dt.UTC
NOW = dt.datetime(2026, 6, 15, 12, 0, 0, tzinfo=UTC)
FIELDS = {
    "plan": "string",
    "seats": "number",
    "vip": "bool",
    "renewal": "date",
    "trial_end": "datetime",
    "langs": "list",
}
DAY = 86400

# -- contacts ------------------------------------------------------------------------------
names = st.none() | st.sampled_from(["Ann", "ann", "Bob", "Émile", "Zoë", "", "Ann-Marie"])
moments = (st.integers(-6 * DAY, 2 * DAY) | st.integers(-6, 2).map(lambda d: d * DAY - 12 * 3600)).map(
    lambda s: NOW + dt.timedelta(seconds=s)
)
fine_moments = moments | st.builds(lambda m, us: m.replace(microsecond=us), moments, st.integers(0, 999_999))
custom = st.fixed_dictionaries(
    {},
    optional={
        "plan": st.sampled_from(["pro", "free", "Pro", "pro plus"]),
        "seats": st.integers(-3, 20) | st.sampled_from([2.5, 0.0]),
        "vip": st.booleans(),
        "renewal": st.integers(-4, 4).map(lambda d: (NOW.date() + dt.timedelta(days=d)).isoformat()),
        "trial_end": (st.integers(-3 * DAY, 3 * DAY) | st.integers(-3, 3).map(lambda d: d * DAY - 12 * 3600)).map(
            lambda s: (NOW + dt.timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ),
        "langs": st.lists(st.sampled_from(["en", "de", "fr"]), unique=True, max_size=3),
    },
)
events = st.lists(
    st.tuples(
        st.sampled_from(["order.paid", "page.visited"]),
        st.integers(-40 * DAY, 2 * DAY),
        st.fixed_dictionaries(
            {},
            optional={
                "total": st.integers(0, 100) | st.just(12.5),
                "kind": st.sampled_from(["a", "b"]),
                "flag": st.booleans(),
                "machine": st.booleans(),  # a proxy's or scanner's: `did` counts people's events only
            },
        ),
    ),
    max_size=4,
)
contacts = st.lists(
    st.fixed_dictionaries(
        {
            "first_name": names,
            "stage": st.none() | st.sampled_from(["lead", "customer"]),
            "score": st.integers(-20, 40),
            "created_at": fine_moments,
            "last_seen": st.none() | fine_moments,
            "email_domain": st.none() | st.sampled_from(["example.com", "test.org"]),
            "fields": custom,
            "tags": st.lists(st.sampled_from(["vip", "beta", "churned"]), unique=True),
            "events": events,
        }
    ),
    min_size=1,
    max_size=6,
)


# -- condition functions, as a plugin declares them -----------------------------------------------
def _both(form):
    return {"sqlite": form, "postgresql": form}


FUNCTIONS = {
    f.name: f
    for f in [
        ConditionFunction(
            "domain",
            ("string",),
            "string",
            lambda text: text[text.find("@") + 1 :].lower(),
            sql={
                "sqlite": "lower(substr({0}, instr({0}, '@') + 1))",
                "postgresql": "lower(substr({0}, strpos({0}, '@') + 1))",
            },
        ),
        ConditionFunction("half", ("number",), "number", lambda x: x / 2, sql=_both("{0} / 2.0")),
        ConditionFunction("plus", ("number", "number"), "number", lambda a, b: a + b, sql=_both("{0} + {1}")),
        ConditionFunction("is_pro", ("string",), "bool", lambda text: text == "pro", sql=_both("{0} = 'pro'")),
    ]
}


def scope(session, contact):
    """The engine's evaluation context, with the functions' Python implementations."""
    return Scope(session, contact, int(NOW.timestamp()), functions=FUNCTIONS)


# -- conditions ------------------------------------------------------------------------------
F = lambda name: {"field": name}  # noqa: E731
duration = (st.integers(0, 5 * DAY) | st.sampled_from([3600, 12 * 3600, 36 * 3600])).map(lambda s: {"duration": s})
day_duration = st.integers(0, 5).map(lambda d: {"duration": d * DAY})
now_ish = st.sampled_from([{"now": True}, {"today": True}])
date_lit = st.integers(-4, 4).map(lambda d: {"date": (NOW.date() + dt.timedelta(days=d)).isoformat()})
ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
scalars = st.sampled_from([0, 3, 10, -5, 2.5, "pro", "Ann", "ann", "", "lead", True, False, None])


@st.composite
def comparison(draw):
    kind = draw(st.sampled_from(["scalar", "temporal", "arith", "elapsed", "number_arith"]))
    op = draw(ops)
    if kind == "scalar":
        left = F(draw(st.sampled_from(["first_name", "stage", "score", "plan", "seats", "vip", "email", "langs"])))
        right = draw(scalars)
    elif kind == "temporal":
        left = F(draw(st.sampled_from(["created_at", "last_seen", "renewal", "trial_end"])))
        right = draw(
            now_ish
            | date_lit
            | st.builds(lambda n, s, d: {s: [n, d]}, now_ish, st.sampled_from("+-"), duration | day_duration)
        )
    elif kind == "arith":  # a field with date arithmetic, against now/today
        field = F(draw(st.sampled_from(["created_at", "renewal", "trial_end"])))
        left = {draw(st.sampled_from("+-")): [field, draw(duration | day_duration)]}
        right = draw(now_ish | date_lit)
    elif kind == "elapsed":  # now - contact.created_at > 3d
        left = {"-": [draw(now_ish), F(draw(st.sampled_from(["created_at", "renewal", "trial_end"])))]}
        right = draw(duration | day_duration)
    else:
        left = {draw(st.sampled_from("+-")): [F(draw(st.sampled_from(["score", "seats"]))), draw(st.integers(-5, 5))]}
        right = draw(st.integers(-10, 30))
    return {op: [right, left] if draw(st.booleans()) else [left, right]}


text_test = st.builds(
    lambda key, field, value: {key: [F(field), value]},
    st.sampled_from(["contains", "starts_with", "ends_with"]),
    st.sampled_from(["first_name", "email", "plan"]),
    st.sampled_from(["an", "Ann", "", "@example.com", "pro", "o", 3]),
)
membership = st.builds(
    lambda field, items: {"in": [F(field), items]},
    st.sampled_from(["stage", "score", "plan", "seats", "renewal", "first_name"]),
    st.lists(scalars | date_lit.map(lambda d: d["date"]), max_size=3),
)
list_contains = st.builds(lambda v: {"contains": [F("langs"), v]}, st.sampled_from(["en", "de", "x"]))
is_set = st.builds(
    lambda f: {"is_set": F(f)},
    st.sampled_from(["first_name", "last_seen", "plan", "seats", "vip", "renewal", "langs", "stage"]),
)
has_tag = st.builds(lambda t: {"has_tag": t}, st.sampled_from(["vip", "beta", "nope"]))
prop_test = st.sampled_from(
    [
        None,
        {"==": [{"prop": "kind"}, "a"]},
        {">": [{"prop": "total"}, 10]},
        {"!=": [{"prop": "kind"}, "b"]},
        {"is_set": {"prop": "total"}},
        {"not": {"prop": "flag"}},
        {"<=": [5, {"prop": "total"}]},
    ]
)
did = st.builds(
    lambda name, where, n, within: {"did": name, "where": where, "at_least": n, "within": within},
    st.sampled_from(["order.paid", "page.visited"]),
    prop_test,
    st.integers(1, 3),
    st.integers(0, 50 * DAY),
)
# ASCII texts only as arguments of domain(): SQLite's lower() folds ASCII letters alone (docs/plugins.md)
text_arg = st.sampled_from([F("email"), F("plan"), F("stage"), "Ann@Example.COM", "pro", None, F("score")])
number_arg = st.sampled_from([F("score"), F("seats"), 2, 2.5, -3, None, F("plan"), F("stage")]) | st.builds(
    lambda op, f, n: {op: [F(f), n]}, st.sampled_from("+-"), st.sampled_from(["score", "seats"]), st.integers(-3, 3)
)
number_call = st.recursive(
    st.builds(lambda a: {"call": "half", "args": [a]}, number_arg)
    | st.builds(lambda a, b: {"call": "plus", "args": [a, b]}, number_arg, number_arg),
    lambda inner: (
        st.builds(lambda a: {"call": "half", "args": [a]}, inner)
        | st.builds(lambda a, b: {"call": "plus", "args": [a, b]}, inner, number_arg | inner)
    ),
    max_leaves=3,
)
text_call = st.builds(lambda a: {"call": "domain", "args": [a]}, text_arg)
pro_call = st.builds(lambda a: {"call": "is_pro", "args": [a]}, text_arg | text_call)
call_test = st.one_of(
    st.builds(lambda op, c, v: {op: [c, v]}, ops, text_call, st.sampled_from(["example.com", "pro", "", None, 3])),
    st.builds(
        lambda op, c, v: {op: [c, v] if v != "swap" else [1, c]},
        ops,
        number_call,
        st.sampled_from([0, 0.5, 1, 1.25, 1.5, 2.5, -0.5, -1, "1", None, "swap"]),
    ),
    pro_call,
    pro_call.map(lambda c: {"not": c}),
    st.builds(lambda c, b: {"==": [c, b]}, pro_call, st.booleans()),
    st.builds(
        lambda c, items: {"in": [c, items]},
        text_call,
        st.lists(st.sampled_from(["example.com", "test.org", "pro", 3]), max_size=2),
    ),
    st.builds(
        lambda key, c, v: {key: [c, v]},
        st.sampled_from(["contains", "starts_with", "ends_with"]),
        text_call,
        st.sampled_from(["ex", ".org", "", "pro"]),
    ),
)
leaf = (
    comparison()
    | text_test
    | membership
    | list_contains
    | is_set
    | has_tag
    | did
    | call_test
    | st.sampled_from([True, False, None])
    | st.just({"field": "vip"})
)
conditions = st.recursive(
    leaf,
    lambda inner: (
        st.builds(lambda k, xs: {k: xs}, st.sampled_from(["and", "or"]), st.lists(inner, min_size=1, max_size=3))
        | st.builds(lambda x: {"not": x}, inner)
    ),
    max_leaves=6,
)


def _store(session, people):
    session.execute(delete(Event))
    session.execute(delete(ContactTag))
    session.execute(delete(Contact))
    for i, person in enumerate(people):
        contact = Contact(
            first_name=person["first_name"],
            stage=person["stage"],
            score=person["score"],
            created_at=person["created_at"],
            updated_at=person["created_at"],
            last_seen=person["last_seen"],
            fields=person["fields"],
            email=f"c{i}@{person['email_domain']}" if person["email_domain"] else None,
        )
        contact.tags = [ContactTag(tag=t) for t in person["tags"]]
        session.add(contact)
        session.flush()
        for name, offset, props in person["events"]:
            session.add(
                Event(
                    contact_id=contact.id,
                    name=name,
                    props=props,
                    occurred_at=NOW + dt.timedelta(seconds=offset),
                    received_at=NOW,
                )
            )
    session.flush()


@pytest.fixture
def fields(app):
    with app.app_context():
        session = get_session()
        session.add_all([FieldDefinition(name=n, type=t) for n, t in FIELDS.items()])
        session.commit()


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(people=contacts, trees=st.lists(conditions, min_size=1, max_size=6))
def test_sql_and_evaluator_agree(app, fields, people, trees):
    with app.app_context():
        session = get_session()
        _store(session, people)
        dialect = session.get_bind().dialect.name
        everyone = list(session.scalars(select(Contact).order_by(Contact.id)))
        for tree in trees:
            try:
                clause = where(tree, dialect=dialect, now=NOW, fields=FIELDS, functions=FUNCTIONS)
            except Unsupported as exc:  # every generated form is meant to have SQL
                pytest.fail(f"no SQL for {tree}: {exc}")
            by_sql = set(session.scalars(select(Contact.id).where(clause)))
            by_python = {c.id for c in everyone if dsl.holds(tree, scope(session, c))}
            assert by_sql == by_python, f"{tree}: SQL {sorted(by_sql)} != evaluator {sorted(by_python)}"
        session.rollback()


def test_every_built_in_contact_field_has_sql_of_its_vocabulary_type_or_says_it_has_none():
    """Each field the language knows is either a column SQL reads as the type the checker gives it, or one kept in
    the ``fields`` JSON that SQL leaves to the evaluator, saying so (``in segment`` and counts then run in Python);
    never an "unknown contact field"."""
    python_types = {"string": str, "number": int, "dcol": dt.datetime}
    for name, type_ in dsl.BUILTIN_CONTACT_FIELDS.items():
        if name in COLUMN_KINDS:
            assert where({"is_set": F(name)}, dialect="sqlite", now=NOW, fields={}) is not None
            column_type = Contact.__table__.c[name].type
            column_type = getattr(column_type, "impl", column_type)  # UTCDateTime decorates a DateTime
            assert column_type.python_type is python_types[COLUMN_KINDS[name]], name
            assert COLUMN_KINDS[name] == ("dcol" if type_ == "datetime" else type_), name
        else:
            assert name not in Contact.__table__.c and name in IN_PYTHON, name
            with pytest.raises(Unsupported, match=rf"contact\.{name} is kept in the fields JSON .*evaluated in Python"):
                where({"is_set": F(name)}, dialect="sqlite", now=NOW, fields={})
    assert set(COLUMN_KINDS) | IN_PYTHON == set(dsl.BUILTIN_CONTACT_FIELDS)


def test_a_custom_field_redefining_a_built_in_one_is_read_as_defined(app):
    """``birthday`` defined as a string field compares as text in SQL, as the checker (``with_fields``) types it."""
    with app.app_context():
        session = get_session()
        session.add_all([Contact(fields={"birthday": "in May"}), Contact(fields={"birthday": "2000-01-01"})])
        session.flush()
        tree = {"starts_with": [F("birthday"), "in"]}
        clause = where(tree, dialect=session.get_bind().dialect.name, now=NOW, fields={"birthday": "string"})
        assert list(session.scalars(select(Contact.fields).where(clause))) == [{"birthday": "in May"}]
        session.rollback()


@pytest.mark.parametrize(
    "tree",
    [
        {"matches": [F("first_name"), "^A"]},
        {"<": [F("score"), F("seats")]},
        {"==": [{"call": "domain", "args": [F("email")]}, "x"]},  # no functions given
        {"==": [{"call": "nowhere", "args": []}, "x"]},
    ],
)
def test_what_has_no_sql_says_so(tree):
    with pytest.raises(Unsupported):
        where(tree, dialect="sqlite", now=NOW, fields=FIELDS)


def test_a_function_without_an_sql_form_for_the_database_has_no_sql():
    sqlite_only = {"domain": ConditionFunction("domain", ("string",), "string", str.lower, sql={"sqlite": "{0}"})}
    tree = {"==": [{"call": "domain", "args": [F("email")]}, "x"]}
    assert where(tree, dialect="sqlite", now=NOW, fields=FIELDS, functions=sqlite_only) is not None
    with pytest.raises(Unsupported, match="`domain\\(\\)` has no SQL form for postgresql"):
        where(tree, dialect="postgresql", now=NOW, fields=FIELDS, functions=sqlite_only)


def test_an_argument_used_twice_in_an_sql_form_is_bound_once_per_use(app, fields):
    with app.app_context():
        session = get_session()
        session.add_all([Contact(email="ann@Example.com", fields={}), Contact(email="bo@test.org", fields={})])
        session.commit()
        tree = {"==": [{"call": "domain", "args": ["X@EXAMPLE.COM"]}, {"call": "domain", "args": [F("email")]}]}
        clause = where(
            {"==": [{"call": "domain", "args": [F("email")]}, "example.com"]},
            dialect=session.get_bind().dialect.name,
            now=NOW,
            fields=FIELDS,
            functions=FUNCTIONS,
        )
        assert list(session.scalars(select(Contact.email).where(clause))) == ["ann@Example.com"]
        with pytest.raises(Unsupported):  # two non-constant sides: evaluated in Python instead
            where(tree, dialect="sqlite", now=NOW, fields=FIELDS, functions=FUNCTIONS)


def test_sql_metacharacters_in_values_are_data(app, fields):
    with app.app_context():
        session = get_session()
        session.add(Contact(email="o'brien@example.com", first_name="x'; DROP TABLE contacts; --", fields={}))
        session.commit()
        dialect = session.get_bind().dialect.name
        for tree in (
            {"==": [F("first_name"), "x'; DROP TABLE contacts; --"]},
            {"contains": [F("email"), "'"]},
            {"starts_with": [F("first_name"), "x'%"]},
        ):
            hits = list(
                session.scalars(select(Contact.email).where(where(tree, dialect=dialect, now=NOW, fields=FIELDS)))
            )
            assert hits == (["o'brien@example.com"] if "%" not in str(tree) else [])


def _grid_people():
    """Contacts sitting on every boundary the date/time comparisons have."""
    today = NOW.date()
    people = []
    for days in (-1, 0, 1):
        for seconds in (-1, 0, 1, -12 * 3600):
            moment = NOW + dt.timedelta(days=days, seconds=seconds)
            people.append(
                {
                    "first_name": "Ann" if seconds else None,
                    "stage": None,
                    "score": days * 10 + seconds,
                    "created_at": moment.replace(microsecond=500_000 if seconds == 1 else 0),
                    "last_seen": moment if days else None,
                    "email_domain": None,
                    "tags": [],
                    "events": [],
                    "fields": {
                        "renewal": (today + dt.timedelta(days=days)).isoformat(),
                        "trial_end": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "seats": seconds,
                    },
                }
            )
    people.append(
        {
            "first_name": None,
            "stage": None,
            "score": 0,
            "created_at": NOW,
            "last_seen": None,
            "email_domain": None,
            "tags": [],
            "events": [],
            "fields": {},
        }
    )
    return people


def _grid_trees():
    consts = [
        {"now": True},
        {"today": True},
        {"-": [{"now": True}, {"duration": 12 * 3600}]},
        {"+": [{"today": True}, {"duration": DAY}]},
        {"-": [{"now": True}, {"duration": 1}]},
        {"date": NOW.date().isoformat()},
        NOW.date().isoformat(),
        "2026-06-15T12:00:00Z",
    ]
    trees = []
    for field in ("renewal", "trial_end", "created_at", "last_seen"):
        for op in ("==", "!=", "<", "<=", ">", ">="):
            for const in consts:
                trees += [{op: [F(field), const]}, {op: [const, F(field)]}]
            for shift in ({"duration": DAY}, {"duration": 12 * 3600}, {"duration": 1}):
                trees.append({op: [{"+": [F(field), shift]}, {"now": True}]})
                trees.append({op: [{"-": [F(field), shift]}, {"today": True}]})
                trees.append({op: [{"-": [{"now": True}, F(field)]}, shift]})
        trees.append({"in": [F(field), [NOW.date().isoformat(), "x", 3]]})
    return trees


def test_boundaries_agree(app, fields):
    with app.app_context():
        session = get_session()
        _store(session, _grid_people())
        dialect = session.get_bind().dialect.name
        everyone = list(session.scalars(select(Contact).order_by(Contact.id)))
        for tree in _grid_trees():
            by_sql = set(
                session.scalars(select(Contact.id).where(where(tree, dialect=dialect, now=NOW, fields=FIELDS)))
            )
            by_python = {c.id for c in everyone if dsl.holds(tree, scope(session, c))}
            assert by_sql == by_python, f"{tree}: SQL {sorted(by_sql)} != evaluator {sorted(by_python)}"


PERSON = {
    "first_name": "Ann",
    "stage": None,
    "score": 0,
    "created_at": NOW - dt.timedelta(days=3),
    "last_seen": None,
    "email_domain": None,
    "fields": {},
    "tags": [],
}


def test_did_counts_people_s_events_not_machines_unless_asked(app, fields):
    """A scanner's click (``machine: true``) is not something the person did, in SQL as in the evaluator."""
    clicks = [("email.clicked", -3600, {"machine": True}), ("email.clicked", -7200, {"machine": False})]
    people = [{**base, "events": events} for base, events in ((PERSON, clicks[:1]), (PERSON, clicks))]
    asked = {"==": [{"prop": "machine"}, True]}
    cases = [
        ({"did": "email.clicked", "within": DAY}, [False, True]),
        ({"did": "email.clicked", "within": DAY, "at_least": 2}, [False, False]),
        ({"did": "email.clicked", "where": asked, "within": DAY}, [True, True]),
    ]
    with app.app_context():
        session = get_session()
        _store(session, people)
        everyone = list(session.scalars(select(Contact).order_by(Contact.id)))
        dialect = session.get_bind().dialect.name
        for tree, expected in cases:
            by_sql = set(
                session.scalars(select(Contact.id).where(where(tree, dialect=dialect, now=NOW, fields=FIELDS)))
            )
            by_python = [dsl.holds(tree, scope(session, c)) for c in everyone]
            assert by_python == expected, tree
            assert by_sql == {c.id for c, held in zip(everyone, expected, strict=True) if held}, tree
        session.rollback()


@pytest.mark.parametrize(
    "tree",
    [
        {"is_set": F("plan\n")},
        {"did": "order.paid", "where": {"==": [{"prop": "kind\n"}, "a"]}, "at_least": 1, "within": DAY},
        {"did": "order.paid", "where": {"is_set": {"prop": "kind\n.total"}}, "at_least": 1, "within": DAY},
    ],
    ids=["field", "property", "property-path"],
)
def test_a_name_with_a_trailing_newline_is_no_name(tree):
    """A name is matched whole: ``$`` alone would let a trailing newline through into the JSON path."""
    with pytest.raises(Unsupported):
        where(tree, dialect="sqlite", now=NOW, fields={**FIELDS, "plan\n": "string"})
