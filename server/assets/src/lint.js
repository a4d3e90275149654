// Live diagnostics: the server's checker answers, the editor marks each problem at its line and column
// with the message, the hint and one-click fixes.
import { linter } from "@codemirror/lint";
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
    out.push({
      from: range.from,
      to: range.to,
      severity: item.severity === "warning" ? "warning" : "error",
      source: "nudge check",
      message: hint ? `${item.message} (hint: ${hint})` : item.message,
      renderMessage: () => renderMessage(item.message, hint),
      actions: (Array.isArray(item.fixes) ? item.fixes : [])
        .filter((fix) => fix && Number.isFinite(fix.line) && Number.isFinite(fix.col))
        .map((fix) => fixAction(state, fix, range.from)),
    });
  }
  return out;
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
    return toDiagnostics(state, items);
  };
  return linter(source, { delay: 400 });
}
