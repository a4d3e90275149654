"""Check a parsed program against a vocabulary: names, types, structure.

``check(program, vocabulary)`` returns every problem found, errors and
warnings, sorted by position. It never raises for a program the parser built.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from . import ast as A
from .diagnostics import Diagnostic, control_character, did_you_mean, shorten, sort_key, suggest, unknown_step
from .formatter import number
from .formatter import string as quoted
from .typecheck import OPENS_WARNING, Reporter, Scope, TypeChecker, article, compatible, tag_problem
from .vocabulary import BUILTIN_STEPS, READ_ONLY_FIELDS, Vocabulary

MAX_DURATION = 100 * 365 * 86400
MIN_INTERVAL = 60
MAX_ARMS = 26
#: the longest rule name and team the engine stores (their columns' sizes; a tag's is typecheck.MAX_TAG)
MAX_RULE_NAME = 255
MAX_TEAM = 128

#: a rule's ``priority`` levels (highest first) and what a send held by a frequency cap may do (``on cap``)
CAP_POLICY = {"priority": ("high", "normal", "low"), "on cap": ("skip", "wait")}
#: the bounds of ``at best time within D``: a day's hours fit in 1d; a week is the longest useful wait
MIN_BEST_WINDOW, MAX_BEST_WINDOW = 3600, 7 * 86400
#: a value of each contact-field type, for hints
EXAMPLE = {
    "string": '`"text"`',
    "number": "`10`",
    "bool": "`true` or `false`",
    "date": "`2026-12-31` or `today + 30d`",
    "datetime": "`now`",
    "list": '`["a", "b"]`',
}
#: what each staff step's text is for, with an example: (whose text, example)
STAFF_TEXT = {
    A.NoteStep: ("a note", 'write what the note should say, e.g. `note "Asked for a demo"`'),
    A.TaskStep: ("a task", 'say what to do, e.g. `task "Call {{ contact.first_name }}" for "sales"`'),
    A.NotifyStep: ("a notification", 'write the message, e.g. `notify "sales" "Hot lead: {{ contact.email }}"`'),
}
QUIET_HOURS_HINT = "default {channel} quiet hours {start}–{end} apply; add `quiet hours …` to make it explicit"


def check(program: A.Program, vocabulary: Vocabulary | None = None) -> list[Diagnostic]:
    """Every problem in ``program``, errors and warnings, in source order.

    :param program: a program from :func:`dsl.parse`.
    :param vocabulary: the names the program may use; defaults to Nudge's built-ins.
    :return: diagnostics sorted by position.
    """
    checker = _Checker(program, vocabulary or Vocabulary.default())
    checker.run()
    return sorted(checker.report.diagnostics, key=sort_key)


def check_condition(
    condition: A.Node,
    vocabulary: Vocabulary | None = None,
    filename: str = "<condition>",
    *,
    sql_dialect: str | None = None,
) -> list[Diagnostic]:
    """Every problem in a bare condition (a segment's text), in source order; ``event.…`` has no event here.

    :param condition: an expression from :func:`dsl.parser.parse_expression`.
    :param vocabulary: the names it may use; defaults to Nudge's built-ins.
    :param sql_dialect: the database the condition will run on as SQL (``sqlite``, ``postgresql``);
        calling a function without an SQL form for it is then an error.
    """
    checker = _Checker(A.Program(filename, ()), vocabulary or Vocabulary.default(), sql_dialect)
    checker.check_literals(condition)
    checker.types.condition(condition, Scope(None, False))
    return sorted(checker.report.diagnostics, key=sort_key)


def listened_events(program: A.Program) -> list[str]:
    """Every event name the program waits for, once per place it is written (triggers, goals, ``wait for``,
    ``did``): a caller checking several files counts them, since a name written twice is no typo."""
    return [node.name for node in A.walk(program) if isinstance(node, A.EventName)]


def placeholder_problem(text: str) -> str | None:
    """Why the ``{{ … }}`` placeholders of ``text`` do not balance, or None."""
    position = 0
    while True:
        opening = text.find("{{", position)
        closing = text.find("}}", position)
        if opening == -1 and closing == -1:
            return None
        if opening == -1 or (closing != -1 and closing < opening):
            return "`}}` without a matching `{{`"
        end = text.find("}}", opening + 2)
        if end == -1:
            return "`{{` is never closed with `}}`"
        inner = text[opening + 2 : end]
        if "{{" in inner:
            return "placeholders cannot nest: `{{` inside `{{ … }}`"
        if not inner.strip():
            return "empty placeholder `{{ }}`"
        position = end + 2


class _Checker:
    def __init__(self, program: A.Program, vocabulary: Vocabulary, sql_dialect: str | None = None):
        self.program = program
        self.vocabulary = vocabulary
        self.report = Reporter(program.filename)
        self.types = TypeChecker(vocabulary, self.report, self.check_event, sql_dialect)
        self.file_rules = set(program.rule_names())

    def run(self) -> None:
        seen: dict[str, A.Rule] = {}
        for rule in self.program.rules:
            name = rule.display_name(self.program.filename)
            if rule.name is not None and not name.strip():
                self.report.error(
                    rule.name,
                    "a rule's name cannot be empty",
                    'name it, e.g. `rule "Welcome series"`, or leave out the `rule` line',
                )
            elif rule.name is not None and control_character(name) is not None:
                self.report.error(
                    rule.name,
                    f"a rule's name cannot contain a line break or control character ({control_character(name)})",
                    'a rule\'s name is one line of text: remove the character, e.g. `rule "Welcome series"`',
                )
            elif rule.name is not None and len(name) > MAX_RULE_NAME:
                self.report.error(
                    rule.name,
                    f"a rule's name has at most {MAX_RULE_NAME} characters (this one has {len(name)})",
                    "shorten it; a note or a comment can say more",
                )
            elif name in seen and rule.name is not None:
                self.report.error(
                    rule.name,
                    f'another rule is already named "{shorten(name)}" (line {seen[name].span.line})',
                    "give every rule its own name",
                )
            seen.setdefault(name, rule)
            self.check_rule(rule)

    # ---- names ---------------------------------------------------------------

    def check_event(self, event: A.EventName) -> None:
        name = event.name
        if name != name.lower():
            self.report.error(
                event,
                f'event names are lowercase: "{shorten(name.lower())}"',
                "write event names in lowercase letters, as Nudge and your app raise them",
            )
            return
        known = self.vocabulary.events
        if known is None or name in known:
            return
        namespace = name.split(".")[0]
        if namespace in self.vocabulary.reserved:
            own = sorted(e for e in known if e.startswith(namespace + "."))
            text, best = suggest(name, own)
            self.report.error(
                event,
                f'unknown event "{shorten(name)}"{text}',
                f"`{shorten(namespace)}.…` events are Nudge's own: " + ", ".join(own),
                best,
            )
            return
        if self.vocabulary.raised is not None:
            if name not in self.vocabulary.raised:
                text, best = suggest(name, known | self.vocabulary.raised)
                self.report.warning(
                    event,
                    f'nothing raises event "{shorten(name)}"{text}',
                    "no built-in event, plugin, other rule or event received so far has this "
                    "name; if your app will send it (POST /api/v1/events), all is well",
                    best,
                )
            return
        close = did_you_mean(name, known, cutoff=0.8)
        if close:
            self.report.warning(
                event,
                f'unknown event "{shorten(name)}" — did you mean "{close}"?',
                "custom events are fine; check the spelling if you meant the known one",
                close,
            )

    def check_date_field(self, path: A.Path, what: str) -> None:
        if path.root != "contact":
            self.report.error(
                path,
                f"{what} needs a contact field, like `contact.birthday`",
                "name one of the contact's date fields: `contact.birthday` or a custom date field",
            )
            return
        kind = self.types.contact_field(path)
        if kind not in ("date", "datetime", "any"):
            self.report.error(
                path,
                f"{what} needs a date field; `{shorten(str(path))}` is {article(kind)}",
                "use a date field such as `contact.birthday`, or add a custom field of type date",
            )

    # ---- rules ---------------------------------------------------------------

    def check_rule(self, rule: A.Rule) -> None:
        self.check_literals(rule)
        self.check_header(rule)
        scope = self.check_trigger(rule.trigger)
        if rule.condition is not None:
            self.types.condition(rule.condition, scope)
        if not rule.steps:
            self.report.warning(rule, "this rule has no steps", "add steps after `then`")
        self.check_block(rule.steps, scope)
        if rule.quiet_hours is None:
            windows = self.vocabulary.quiet_hours
            first = next(
                (node for node in A.walk(rule) if isinstance(node, A.Send) and node.channel.text in windows), None
            )
            if first is not None:
                channel = first.channel.text
                start, end = windows[channel]
                self.report.warning(
                    first,
                    f"`send {channel}` in a rule without `quiet hours`",
                    QUIET_HOURS_HINT.format(
                        channel=channel.upper() if len(channel) <= 3 else channel, start=start, end=end
                    ),
                )

    def check_header(self, rule: A.Rule) -> None:
        for kind, word in (
            (A.EntryPolicy, "entry policy"),
            (A.Goal, "goal (`until`)"),
            (A.QuietHours, "`quiet hours`"),
        ):
            for extra in rule.header_items(kind)[1:]:
                self.report.error(extra, f"a rule has at most one {word}", "keep one of them")
        for keyword, choices in CAP_POLICY.items():
            found = rule.cap_policy(keyword)
            for extra in found[1:]:
                self.report.error(extra, f"a rule has at most one `{keyword}`", "keep one of them")
            if found and found[0].value.text not in choices:
                value = found[0].value
                text, best = suggest(value.text, choices)
                self.report.error(
                    value,
                    f'unknown `{keyword}` "{shorten(value.text)}"{text}',
                    f"`{keyword}` is one of: " + ", ".join(choices),
                    best,
                )
        entry = rule.entry
        if entry is not None and entry.every is not None and entry.every.seconds <= 0:
            self.report.error(
                entry.every,
                "`every` needs a duration longer than zero",
                "e.g. `once per contact every 30d`, or write `once per contact` for once ever",
            )
        goal = rule.goal
        if goal is not None:
            self.check_event(goal.event)
            if self.vocabulary.is_open(goal.event.name):
                self.report.warning(goal, *OPENS_WARNING)
            if goal.where is not None:
                self.types.condition(goal.where, Scope(goal.event.name, True))
        quiet = rule.quiet_hours
        if quiet is not None and quiet.start == quiet.end:
            self.report.error(
                quiet, "quiet hours must start and end at different times", "e.g. `quiet hours 21:00-08:00`"
            )

    def check_trigger(self, trigger: A.Trigger) -> Scope:
        """Check the trigger; return what `event.…` means in the rule's condition."""
        if isinstance(trigger, A.EventTrigger):
            self.check_event(trigger.event)
            return Scope(trigger.event.name, True)
        if isinstance(trigger, A.IntervalTrigger) and trigger.every.seconds < MIN_INTERVAL:
            self.report.error(trigger.every, "schedules run at most once a minute", "use `every 1m` or longer")
        elif isinstance(trigger, A.AnniversaryTrigger):
            self.check_date_field(trigger.field, "`anniversary of`")
        elif isinstance(trigger, A.RelativeDateTrigger):
            self.check_date_field(trigger.field, f"`{trigger.direction}`")
        elif isinstance(trigger, A.InactivityTrigger):
            self.check_event(trigger.event)
            if trigger.quiet.seconds <= 0:
                self.report.error(
                    trigger.quiet,
                    "`for` needs a duration longer than zero",
                    "say how long without the event counts, e.g. `when no page.visited for 30d`",
                )
        return Scope(None, False)

    def check_literals(self, root: A.Node) -> None:
        """Times, dates and durations that cannot exist, anywhere under ``root`` (a rule or a condition)."""
        for node in A.walk(root):
            if isinstance(node, A.Time) and not (node.hour < 24 and node.minute < 60):
                self.report.error(
                    node, f"`{node.hour}:{node.minute:02d}` is not a time of day", "times run from 00:00 to 23:59"
                )
            elif isinstance(node, A.Date):
                try:
                    dt.date.fromisoformat(node.text)
                except ValueError:
                    self.report.error(node, f"`{node.text}` is not a date", "dates are YYYY-MM-DD")
            elif isinstance(node, A.Duration) and node.seconds > MAX_DURATION:
                self.report.error(
                    node, "durations are limited to 100 years", "use a shorter duration: at most 36500d (5200w)"
                )

    # ---- steps ---------------------------------------------------------------

    def check_block(self, steps: Iterable[A.Step], scope: Scope) -> bool:
        """Check a block; return True when it always ends the journey (``stop``)."""
        stopped = reported = False
        for step in steps:
            if stopped and not reported:
                self.report.error(
                    step,
                    "this step can never run: the journey stops before it",
                    "remove it, or move the `stop` after it",
                )
                reported = True
            stopped = self.check_step(step, scope) or stopped
        return stopped

    def check_step(self, step: A.Step, scope: Scope) -> bool:
        method = getattr(self, "step_" + type(step).__name__, None)
        if method is None:
            return False
        return bool(method(step, scope))

    def step_StopStep(self, step: A.StopStep, scope: Scope) -> bool:
        return True

    def step_Send(self, step: A.Send, scope: Scope) -> bool:
        channels = self.vocabulary.channels
        channel, name = step.channel.text, step.template.text
        if channel not in channels:
            text, best = suggest(channel, channels)
            self.report.error(
                step.channel,
                f'unknown channel "{shorten(channel)}"{text}',
                "channels: " + ", ".join(sorted(channels)),
                best,
            )
            return False
        within = step.best_within
        if within is not None and not MIN_BEST_WINDOW <= within.seconds <= MAX_BEST_WINDOW:
            self.report.error(
                within,
                "`at best time within` needs a window of 1h to 7d",
                "e.g. `at best time within 24h`: the send waits at most that long for the contact's best hour",
            )
        names = channels[channel]
        if names is not None and name not in names:
            known = ", ".join(sorted(names)[:8]) or "none yet"
            text, best = suggest(name, names)
            self.report.error(
                step.template,
                f'unknown {channel} template "{shorten(name)}"{text}',
                f"add templates/{channel}/{shorten(name)}.… or use one of: {known}",
                best,
            )
        return False

    def step_Wait(self, step: A.Wait, scope: Scope) -> bool:
        if step.duration.seconds <= 0:
            self.report.error(
                step.duration,
                "`wait` needs a duration longer than zero",
                "e.g. `wait 2d`; remove the step to go on at once",
            )
        return False

    def step_WaitUntil(self, step: A.WaitUntil, scope: Scope) -> bool:
        kind = self.types.infer(step.expr, scope)
        if step.at is not None and kind == "time":
            self.report.error(
                step.at,
                "`at` follows a date: `wait until 09:00` already names the time of day",
                "e.g. `wait until contact.renewal_date - 30d at 10:00`",
            )
        elif kind not in ("date", "datetime", "any"):
            self.report.error(
                step.expr,
                f"`wait until` needs a date or a time, not {article(kind)}",
                "e.g. `wait until contact.renewal_date - 7d` or `wait until 09:00`",
            )
        return False

    def step_WaitFor(self, step: A.WaitFor, scope: Scope) -> bool:
        self.check_event(step.event)
        if self.vocabulary.is_open(step.event.name):
            self.report.warning(step, *OPENS_WARNING)
        if step.where is not None:
            self.types.condition(step.where, Scope(step.event.name, True))
        if step.timeout.seconds <= 0:
            self.report.error(
                step.timeout,
                "`up to` needs a duration longer than zero",
                "say how long to wait for the event before going on without it, e.g. `up to 3d`",
            )
        if step.then_steps is None:
            return False
        arrived = self.check_block(step.then_steps, scope)
        timed_out = self.check_block(step.else_steps or (), scope)
        return arrived and timed_out and step.else_steps is not None

    def step_If(self, step: A.If, scope: Scope) -> bool:
        results = []
        for branch in step.branches:
            self.types.condition(branch.condition, scope)
            results.append(self.check_block(branch.steps, scope))
        if step.else_steps is None:
            return False
        results.append(self.check_block(step.else_steps, scope))
        return all(results)

    def step_Split(self, step: A.Split, scope: Scope) -> bool:
        total = sum(arm.share for arm in step.arms)
        if len(step.arms) < 2:
            self.report.error(step, "a split needs at least two arms", "e.g. `50%: …` and `50%: …`")
        elif len(step.arms) > MAX_ARMS:
            self.report.error(
                step,
                f"a split has at most {MAX_ARMS} arms (A to Z)",
                "merge arms, or split again inside an arm",
            )
        elif total != 100:
            self.report.error(
                step, f"split shares add up to {total}%, not 100%", "make the percentages add up to exactly 100"
            )
        for arm in step.arms:
            if arm.share <= 0:
                self.report.error(
                    arm, "a split arm needs a share above 0%", "give the arm a share, e.g. `10%: …`, or remove it"
                )
        if step.outcome is not None:
            self.check_event(step.outcome)
        if step.window is not None and step.window.seconds <= 0:
            self.report.error(
                step.window,
                "an auto-winner split needs a window above 0",
                "write how long an outcome may take to count, e.g. `within 3d`",
            )
        results = [self.check_block(arm.steps, scope) for arm in step.arms]
        return bool(results) and all(results)

    def step_TagStep(self, step: A.TagStep | A.UntagStep, scope: Scope) -> bool:
        keyword = "tag" if isinstance(step, A.TagStep) else "untag"
        problem = tag_problem(step.tag, keyword)
        if problem is not None:
            self.report.error(step.tag, *problem)
        return False

    step_UntagStep = step_TagStep

    def step_SetField(self, step: A.SetField, scope: Scope) -> bool:
        target = step.target
        value_kind = self.types.infer(step.value, scope)
        if target.root != "contact":
            self.report.error(
                target,
                f"`set` changes contact fields, not `{shorten(str(target))}`",
                "write `set contact.FIELD = VALUE`",
            )
            return False
        kind = self.types.contact_field(target)
        shown = shorten(str(target))
        if target.rest in READ_ONLY_FIELDS:
            self.report.error(
                target,
                f"`{shown}` is read-only",
                "Nudge keeps it up to date itself; store the value in a custom field instead",
            )
        elif value_kind in ("tag", "duration", "time") or not compatible(kind, value_kind):
            example = EXAMPLE.get(kind)
            self.report.error(
                step.value,
                f"`{shown}` holds {article(kind)}, not {article(value_kind)}",
                f"give it {article(kind)}" + (f", e.g. {example}" if example else ""),
            )
        return False

    def step_ScoreStep(self, step: A.ScoreStep, scope: Scope) -> bool:
        if step.delta == 0:
            self.report.warning(
                step,
                f"`score {step.sign}{number(abs(step.delta))}` changes nothing",
                "remove the step, or change the score by more than 0, e.g. `score +10`",
            )
        return False

    def _text(self, text: A.String) -> None:
        problem = placeholder_problem(text.value)
        if problem:
            self.report.error(text, problem, "placeholders read `{{ contact.first_name }}`")

    def _staff_text(self, step: A.NoteStep | A.TaskStep | A.NotifyStep) -> None:
        whose, hint = STAFF_TEXT[type(step)]
        if not step.text.value.strip():
            self.report.error(step.text, f"{whose}'s text cannot be empty", hint)
        else:
            self._text(step.text)

    def _team(self, team: A.String) -> None:
        control = control_character(team.value)
        if not team.value.strip():
            self.report.error(team, "the team cannot be empty", 'e.g. `"front-desk"`')
        elif control is not None:
            self.report.error(
                team,
                f"a team's name cannot contain a line break or control character ({control})",
                'write the name as NUDGE_TEAMS has it, on one line, e.g. `"front-desk"`',
            )
        elif len(team.value) > MAX_TEAM:
            self.report.error(
                team,
                f"a team's name has at most {MAX_TEAM} characters (this one has {len(team.value)})",
                "use the team's short name, as NUDGE_TEAMS names it",
            )

    def step_NoteStep(self, step: A.NoteStep, scope: Scope) -> bool:
        self._staff_text(step)
        return False

    def step_TaskStep(self, step: A.TaskStep, scope: Scope) -> bool:
        self._staff_text(step)
        self._team(step.team)
        if step.due is not None and step.due.seconds <= 0:
            self.report.error(step.due, "`due` needs a duration longer than zero", "e.g. `due 1d`, or leave `due` out")
        return False

    def step_NotifyStep(self, step: A.NotifyStep, scope: Scope) -> bool:
        self._staff_text(step)
        self._team(step.team)
        return False

    def step_StartStep(self, step: A.StartStep, scope: Scope) -> bool:
        known = self.vocabulary.rules
        name = step.rule.value
        if known is None or name in self.file_rules or name in known:
            return False
        candidates = set(known) | self.file_rules
        text, best = suggest(name, candidates)
        self.report.error(
            step.rule,
            f'unknown rule "{shorten(name)}"{text}',
            "`start` names a rule checked with this one or one the instance has",
            quoted(best) if best else None,
        )
        return False

    def step_PluginStep(self, step: A.PluginStep, scope: Scope) -> bool:
        word = step.keyword.text
        if word in self.vocabulary.steps:
            return False
        self.report.error(step.keyword, *unknown_step(word, set(BUILTIN_STEPS) | set(self.vocabulary.steps)))
        return False
