// Live diagnostics: the server's checker answers, the editor marks each problem at its line and column
// with the message, the hint and one-click fixes.
import { forEachDiagnostic, linter, setDiagnosticsEffect } from "@codemirror/lint";
import { postJSON } from "./server.js";

/** The document offset of a 1-based line and a 1-based column counted in characters (code points). */
export function offsetOf(doc, line, col) {
  const l = doc.line(Math.min(Math.max(1, line | 0), doc.lines));
  let index = 0;
  for (let counted = 1; counted < col && index < l.text.length; counted++) {
    index += l.text.codePointAt(index) > 0xffff ? 2 : 1;
  }
  return l.from + index;
}

/** A zero-width range widened to the word (or the one character) at its place. */
function widen(state, from) {
  const word = state.wordAt(from);
  if (word) return { from: word.from, to: word.to };
  const line = state.doc.lineAt(from);
  return from < line.to ? { from, to: from + 1 } : { from, to: from };
}

function renderMessage(message, hint) {
  const box = document.createElement("span");
  box.className = "nudge-diagnostic";
  const text = document.createElement("span");
  text.className = "nudge-diagnostic-message";
  text.textContent = message;
  box.append(text);
  if (hint) {
    const help = document.createElement("span");
    help.className = "nudge-diagnostic-hint";
    help.textContent = `hint: ${hint}`;
    box.append(help);
  }
  return box;
}

/** A fix of the answer as a lint action: it replaces its range, which moves with the diagnostic. */
function fixAction(state, fix, anchor) {
  const start = offsetOf(state.doc, fix.line, fix.col);
  const end = fix.end_line == null ? start : Math.max(start, offsetOf(state.doc, fix.end_line, fix.end_col ?? fix.col));
  const insert = String(fix.insert ?? "");
  return {
    name: String(fix.label ?? "Fix"),
    apply(view, from) {
      const shift = from - anchor;
      const length = view.state.doc.length;
      const a = Math.min(length, Math.max(0, start + shift)), b = Math.min(length, Math.max(a, end + shift));
      view.dispatch({
        changes: { from: a, to: b, insert }, selection: { anchor: a + insert.length }, userEvent: "input.fix",
      });
      view.focus();
    },
  };
}

/**
 * The server's diagnostics (the contract in docs/admin-editor.md) as CodeMirror diagnostics for `state`.
 * Items that are not objects with a line and a message are skipped.
 */
export function toDiagnostics(state, items) {
  if (!Array.isArray(items)) return [];
  const out = [];
  for (const item of items) {
    if (!item || typeof item !== "object" || !Number.isFinite(item.line) || typeof item.message !== "string") continue;
    const start = offsetOf(state.doc, item.line, Number.isFinite(item.col) ? item.col : 1);
    let range = { from: start, to: start };
    if (Number.isFinite(item.end_line) && Number.isFinite(item.end_col)) {
      range.to = Math.max(start, offsetOf(state.doc, item.end_line, item.end_col));
    }
    if (range.to === range.from) range = widen(state, start);
    const hint = typeof item.hint === "string" && item.hint ? item.hint : null;
    const fixes = (Array.isArray(item.fixes) ? item.fixes : [])
      .filter((fix) => fix && Number.isFinite(fix.line) && Number.isFinite(fix.col));
    const severity = item.severity === "warning" ? "warning" : "error";
    out.push({
      from: range.from,
      to: range.to,
      severity,
      source: "nudge check",
      message: hint ? `${item.message} (hint: ${hint})` : item.message,
      renderMessage: () => renderMessage(item.message, hint),
      actions: fixes.map((fix) => fixAction(state, fix, range.from)),
      said: said(state, severity, item.message, hint, fixes, range.from),
    });
  }
  return out;
}

/** What a diagnostic says, its fixes placed relative to its start: two checks that say the same say it alike. */
function said(state, severity, message, hint, fixes, from) {
  return JSON.stringify([severity, message, hint, fixes.map((fix) => {
    const start = offsetOf(state.doc, fix.line, fix.col);
    const end = fix.end_line == null ? start : offsetOf(state.doc, fix.end_line, fix.end_col ?? fix.col);
    return [String(fix.label ?? "Fix"), String(fix.insert ?? ""), start - from, end - from];
  })]);
}

/** The diagnostics `state` shows, each where the edits since its check have moved it. */
function shown(state) {
  const out = [];
  forEachDiagnostic(state, (diagnostic, from, to) => out.push({ diagnostic, from, to, said: diagnostic.said }));
  return out;
}

const byPlace = (a, b) => a.from - b.from || a.to - b.to || (a.said < b.said ? -1 : a.said > b.said ? 1 : 0);

/**
 * `fresh`, unless it says exactly what the editor shows already (the same problems at the same places, as a check
 * after a change elsewhere, in a comment say): then the shown diagnostics themselves, at their places, so the answer
 * changes nothing — a problem's tooltip open under the pointer stays open, and its fix buttons keep working.
 */
export function keepIfSame(state, fresh) {
  const now = shown(state).sort(byPlace);
  const incoming = [...fresh].sort(byPlace);
  const same = now.length === incoming.length && now.every((d, i) =>
    d.from === incoming[i].from && d.to === incoming[i].to && d.said === incoming[i].said);
  if (!same) return fresh;
  for (const { diagnostic, from, to } of now) Object.assign(diagnostic, { from, to });
  return now.map(({ diagnostic }) => diagnostic);
}

/** A tooltip stays open through an answer that kept the shown diagnostics (`keepIfSame`); else as CodeMirror does. */
function hideOn(tr) {
  const effect = tr.effects.find((e) => e.is(setDiagnosticsEffect));
  if (!effect || !tr.changes.empty) return null;
  const before = new Set(shown(tr.startState).map(({ diagnostic }) => diagnostic));
  return effect.value.length === before.size && effect.value.every((d) => before.has(d)) ? false : null;
}

const NEVER = new Promise(() => {});

/**
 * The lint extension that asks the server's checker about the text, ~400 ms after the last change.
 * Only the latest request counts: an older answer arriving late is dropped. A failed request reports
 * through `notice` and clears the marks; it never throws.
 *
 * @param url where to POST `{"source": text}`
 * @param csrf a function giving the CSRF token to send
 * @param notice a function `(kind, text|null)` that shows or clears a non-blocking notice
 */
export function validation(url, csrf, notice) {
  let latest = 0;
  const source = async (view) => {
    const mine = ++latest;
    const state = view.state;
    let answer;
    try {
      answer = await postJSON(url, { source: state.doc.toString() }, csrf());
    } catch (error) {
      if (mine !== latest) return NEVER;
      notice("check", `The rule could not be checked: ${error.message}. ` +
        "Your text is kept; checking resumes as you type.");
      return [];
    }
    if (mine !== latest) return NEVER;
    const items = answer.data && answer.data.diagnostics;
    if (!Array.isArray(items)) {
      notice("check", `The rule could not be checked: the server answered ${answer.status} without diagnostics.`);
      return [];
    }
    notice("check", null);
    return keepIfSame(view.state, toDiagnostics(state, items));
  };
  return linter(source, { delay: 400, hideOn });
}
