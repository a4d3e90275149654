"""What else a plugin adds: triggers, condition functions, actions, admin pages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


class Trigger:
    """An event source a plugin adds (an inbound webhook, a form provider …).

    Its pages and endpoints come through ``register_blueprints``; here it declares
    what it raises, so the rules language knows the event names.
    """

    name: ClassVar[str] = ""
    #: the events it raises, e.g. ``("shop.order_paid",)``
    events: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""


@dataclass(frozen=True)
class ConditionFunction:
    """A function rules may call in their conditions, e.g. ``domain(contact.email) == "example.com"``.

    ``register_condition_functions`` returns these; docs/plugins.md walks through one.

    :param name: how rules call it: letters, digits and ``_``, not starting with a digit, and not a
        word the language keeps where a value starts (``true``, ``false``, ``null``, ``tag``, ``now``,
        ``today``, ``not``, ``has``, ``in``, ``did``).
    :param params: the type of each parameter, one of ``string``, ``number``, ``bool``, ``date``,
        ``datetime``, ``list``, ``duration``, ``time``, ``any``; the checker refuses calls with other
        arguments (``nudge check``, ``nudge apply``, the API).
    :param result: the type of the result, in the same words; the checker types what uses the call.
    :param implementation: a pure Python function of plain values, called with one argument per
        parameter, each of its declared type (never None: a missing argument makes the call unknown
        without calling it). Returning None means "no value". Raising, or returning another type than
        ``result``, makes the call unknown, so the condition does not hold, and the contact's journey
        log says why.
    :param sql: the function's SQL form for each database it supports (``sqlite``, ``postgresql``): an
        SQL expression in which ``{0}``, ``{1}`` … stand for the arguments, e.g.
        ``"lower(substr({0}, instr({0}, '@') + 1))"``. Only for ``string``, ``number`` and ``bool``
        parameters and result. It must give what ``implementation`` gives, and NULL for a NULL
        argument. Segments and broadcasts, which the database counts, may only call functions that
        have an SQL form for the instance's database.
    :param description: one line saying what it gives.
    """

    name: str
    params: tuple[str, ...]
    result: str
    implementation: Callable[..., Any]
    sql: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.params, list):  # a list is fine to write; the declaration keeps a tuple
            object.__setattr__(self, "params", tuple(self.params))


class Action:
    """A step for the rules language that is not a send (a CRM push, a Slack post …).

    Subclasses set ``name`` and implement :meth:`run`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def run(self, contact: Mapping[str, Any], args: Mapping[str, Any]) -> None:  # pragma: no cover - abstract
        """Do the step for *contact* (plain data) with the rule's *args*; raise :class:`ChannelError` to retry."""
        raise NotImplementedError(f"action {self.name!r} does not implement run()")


#: the roles of the admin UI, lowest first: viewers read, editors also change things, admins also manage users
ADMIN_ROLES = ("viewer", "editor", "admin")
#: where :func:`admin_page` writes its declaration on a view (read by Nudge's admin access checks)
ADMIN_ROLE_ATTR = "nudge_admin_role"


def admin_page(role: str = "viewer", *, writes: str | None = None) -> Any:
    """Declare a plugin's Flask view an admin page: Nudge signs the person in and checks their role on every request.

    Put it below the route decorator. The page gets the admin pages' Content-Security-Policy; a
    person not signed in is sent to the sign-in page, a role too low gets 403.

    :param role: the least role (one of :data:`ADMIN_ROLES`) that may open the page (GET).
    :param writes: the least role for POST and the other state-changing methods; by default *role*, but
        never below ``editor`` (viewers are read-only).
    :raises ValueError: for a role that is not one of :data:`ADMIN_ROLES`.
    """
    for value in (role, writes):
        if value is not None and value not in ADMIN_ROLES:
            raise ValueError(f"admin role {value!r} is not one of {', '.join(ADMIN_ROLES)}")

    def decorator(view: Any) -> Any:
        setattr(view, ADMIN_ROLE_ATTR, (role, writes))
        return view

    return decorator
