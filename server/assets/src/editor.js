// The admin UI's rule editor: CodeMirror 6 with the Nudge language, mounted on any
// <textarea data-nudge-editor>, and a side-by-side diff on any <div data-nudge-diff>.
// docs/admin-editor.md describes the data attributes and the JSON the server answers with.
import { EditorState } from "@codemirror/state";
import {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, highlightSpecialChars,
  drawSelection, dropCursor,
} from "@codemirror/view";
import {
  defaultKeymap, history, historyKeymap, indentWithTab, isolateHistory,
} from "@codemirror/commands";
import { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
import {
  autocompletion, completionKeymap, completionStatus, closeBrackets, closeBracketsKeymap,
} from "@codemirror/autocomplete";
import { bracketMatching, foldGutter, foldKeymap, forceParsing, indentOnInput } from "@codemirror/language";
import { lintGutter, lintKeymap, setDiagnostics } from "@codemirror/lint";
import { MergeView } from "@codemirror/merge";
import { nudge, parser } from "./language.js";
import { nudgeCompletions } from "./complete.js";
import { toDiagnostics, validation } from "./lint.js";
import { csrfFor, loadVocabulary, postJSON } from "./server.js";

export { parser };

const editors = new WeakMap(); // textarea -> {view, textarea, status, ...}
const byView = new WeakMap(); // EditorView -> the same record
const diffs = new WeakMap(); // div -> MergeView
let counter = 0;

const theme = EditorView.baseTheme({
  "&": { border: "1px solid #8a8f98", borderRadius: "4px", fontSize: "14px", backgroundColor: "#fff" },
  "&.cm-focused": { outline: "2px solid #1d4ed8", outlineOffset: "1px" },
  ".cm-scroller": { fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace", minHeight: "12em" },
  ".nk-keyword": { color: "#7c1f9e" },
  ".nk-block": { fontWeight: "600" },
  ".nk-operator": { color: "#9a3412" },
  ".nk-string": { color: "#166534" },
  ".nk-rule-name": { fontWeight: "600" },
  ".nk-number, .nk-percent": { color: "#1e40af" },
  ".nk-duration, .nk-time, .nk-date": { color: "#0e7490" },
  ".nk-atom": { color: "#b45309" },
  ".nk-event": { color: "#a21caf" },
  ".nk-path": { color: "#1d4ed8" },
  ".nk-channel, .nk-template": { color: "#374151", fontStyle: "italic" },
  ".nk-plugin-step, .nk-function": { color: "#0f766e" },
  ".nk-comment": { color: "#5b6472", fontStyle: "italic" },
  ".nudge-diagnostic-hint": { display: "block", opacity: "0.85", marginTop: "2px" },
  "&dark .nk-keyword": { color: "#d8b4fe" },
  "&dark .nk-string": { color: "#86efac" },
  "&dark .nk-path": { color: "#93c5fd" },
});

/** How long (ms) a new line may wait for the parser to reach the cursor; see `parsedUpToCursor`. */
const PARSE_WAIT = 500;

/**
 * Enter and re-indenting read the syntax tree, which the parser may not have reached yet at the cursor (a
 * large paste, a busy machine: it goes on in the background): without it, a new line only copies the line
 * before's indentation. This parses up to the last cursor first (at most PARSE_WAIT ms), then lets the command run.
 */
function parsedUpToCursor(view) {
  forceParsing(view, Math.max(...view.state.selection.ranges.map((range) => range.to)), PARSE_WAIT);
  return false;
}

const HELP = "Tab moves to the next field. Press Ctrl-M (Shift-Alt-M on a Mac) to make Tab indent; " +
  "then press Escape before Tab to leave the editor.";

/** An element's accessible name and, when it has a <label>, that label (linked with aria-labelledby). */
function nameOf(el, fallback) {
  const label = el.labels && el.labels[0];
  if (label) {
    if (!label.id) label.id = `nudge-label-${++counter}`;
    return { attrs: { "aria-labelledby": label.id }, label };
  }
  const text = el.getAttribute("aria-label") || el.getAttribute("title") || fallback;
  return { attrs: { "aria-label": text }, label: null };
}

/**
 * `attrs` with an aria-describedby naming the textarea's own hints (the ones it names itself) and then, for an
 * editable editor, the keyboard help. Ids inside [data-fallback] are left out: that is what the plain textarea
 * shows (a problem list checked when the page was made), which the mounted editor replaces with its own marks.
 */
function describedBy(textarea, attrs, helpId) {
  const own = (textarea.getAttribute("aria-describedby") || "").split(/\s+/)
    .filter((id) => id && !document.getElementById(id)?.closest("[data-fallback]"));
  const ids = helpId ? [...own, helpId] : own;
  return ids.length ? { ...attrs, "aria-describedby": ids.join(" ") } : attrs;
}

function element(tag, attrs, text) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  if (text) el.textContent = text;
  return el;
}

/** Show (or with `text` null, clear) a notice of one kind in the editor's status line. */
function notifier(status) {
  const shown = new Map();
  return (kind, text) => {
    if (text == null) shown.delete(kind);
    else shown.set(kind, text);
    status.textContent = [...shown.values()].join(" ");
    status.hidden = shown.size === 0;
  };
}

/**
 * Turn a <textarea> into a rule editor; the textarea stays the form field and follows every change.
 * Reads `data-readonly`, `data-vocabulary-url`, `data-validate-url`, `data-format-url` and `data-csrf`.
 *
 * @returns the EditorView (the same one when called again on the same textarea)
 */
export function mount(textarea) {
  if (editors.has(textarea)) return editors.get(textarea).view;
  const data = textarea.dataset;
  const readOnly = "readonly" in data || textarea.readOnly;
  const wrapper = element("div", { class: "nudge-editor" });
  const help = element("p", { class: "nudge-editor-help", id: `nudge-help-${++counter}` }, HELP);
  const status = element("div", { class: "nudge-editor-status", role: "status", "aria-live": "polite" });
  status.hidden = true;
  const notice = notifier(status);
  const csrf = () => csrfFor(textarea);
  const vocabulary = () => loadVocabulary(data.vocabularyUrl, (text) => notice("vocabulary", text));
  const { attrs, label } = nameOf(textarea, "Rule source");

  const extensions = [
    lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars(), history(), foldGutter(),
    drawSelection(), dropCursor(), indentOnInput(), bracketMatching(), closeBrackets(), highlightActiveLine(),
    highlightSelectionMatches(), nudge(), theme, lintGutter(),
    autocompletion({ override: [nudgeCompletions(vocabulary)] }),
    keymap.of([
      { key: "Enter", run: parsedUpToCursor }, { key: "Mod-Alt-\\", run: parsedUpToCursor },
      ...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, ...foldKeymap,
      ...completionKeymap, ...lintKeymap, indentWithTab,
      { key: "Shift-Alt-f", run: (view) => (format(view), true) },
    ]),
    EditorView.contentAttributes.of(describedBy(textarea, attrs, readOnly ? null : help.id)),
    EditorView.updateListener.of((update) => {
      if (!update.docChanged) return;
      textarea.value = update.state.doc.toString();
      textarea.dispatchEvent(new Event("input", { bubbles: true }));
    }),
  ];
  if (readOnly) extensions.push(EditorState.readOnly.of(true));
  if (data.validateUrl) extensions.push(validation(data.validateUrl, csrf, notice));

  textarea.after(wrapper);
  textarea.hidden = true;
  textarea.style.display = "none";
  const view = new EditorView({ state: EditorState.create({ doc: textarea.value, extensions }), parent: wrapper });
  wrapper.append(status);
  if (!readOnly) {
    // Tab moves focus until the person opts in with Ctrl-M (CodeMirror's tab-focus mode); Escape then Tab leaves.
    wrapper.append(help);
    view.setTabFocusMode(true);
  }
  if (label) label.addEventListener("click", (event) => { event.preventDefault(); view.focus(); });
  if (data.vocabularyUrl) vocabulary(); // fetch early: the first completion is then instant

  const record = { view, textarea, wrapper, notice, csrf, readOnly };
  editors.set(textarea, record);
  byView.set(view, record);
  return view;
}

/** The editor mounted on a textarea (or on the textarea with that id), if any. */
export function editorFor(target) {
  const el = typeof target === "string" ? document.getElementById(target) : target;
  return (el && editors.get(el)?.view) || null;
}

/** Replace the document with `text` as one undoable change that touches only what differs. */
function replaceDocument(view, text) {
  const old = view.state.doc.toString();
  if (old === text) return;
  let start = 0;
  while (start < old.length && start < text.length && old[start] === text[start]) start++;
  let end = 0;
  const room = Math.min(old.length, text.length) - start;
  while (end < room && old[old.length - 1 - end] === text[text.length - 1 - end]) end++;
  view.dispatch({
    changes: { from: start, to: old.length - end, insert: text.slice(start, text.length - end) },
    annotations: isolateHistory.of("full"),
    userEvent: "input.format",
  });
}

/**
 * Ask the server (`data-format-url`) for the canonical text of the rule (`nudge fmt`) and put it in
 * the editor as one undoable change; when it cannot format, its diagnostics are marked instead.
 *
 * @returns a promise of true when the text was formatted
 */
export async function format(target) {
  const view = target instanceof EditorView ? target : editorFor(target);
  const record = view && byView.get(view);
  if (!record) return false;
  const url = record.textarea.dataset.formatUrl;
  if (!url) {
    record.notice("format", "This editor has no format URL (data-format-url).");
    return false;
  }
  if (record.readOnly) return false;
  const sent = view.state.doc;
  let answer;
  try {
    answer = await postJSON(url, { source: sent.toString() }, record.csrf());
  } catch (error) {
    record.notice("format", `The rule could not be formatted: ${error.message}.`);
    return false;
  }
  const data = answer.data || {};
  if (view.state.doc !== sent) {
    record.notice("format", "The text changed while it was being formatted; press Format again.");
    return false;
  }
  if (typeof data.source === "string") {
    record.notice("format", null);
    replaceDocument(view, data.source);
    return true;
  }
  if (Array.isArray(data.diagnostics)) {
    record.notice("format", "The rule could not be formatted: fix the problems marked in it first.");
    view.dispatch(setDiagnostics(view.state, toDiagnostics(view.state, data.diagnostics)));
    return false;
  }
  record.notice("format", `The rule could not be formatted: the server answered ${answer.status}.`);
  return false;
}

/** The editor a [data-nudge-format] button works on: the textarea it names, else the nearest one around it. */
function editorForButton(button) {
  const named = button.getAttribute("data-nudge-format");
  if (named) return editorFor(named);
  for (let node = button.parentElement; node; node = node.parentElement) {
    for (const textarea of node.querySelectorAll("textarea[data-nudge-editor]")) {
      const view = editorFor(textarea);
      if (view) return view;
    }
  }
  return null;
}

function readOnlySide(doc, name) {
  return {
    doc,
    extensions: [
      lineNumbers(), highlightSpecialChars(), nudge(), theme, EditorState.readOnly.of(true),
      // reachable from the keyboard, so a reader can scroll a long side with the arrow keys
      EditorView.contentAttributes.of({ ...name, tabindex: "0" }),
    ],
  };
}

/**
 * Turn a <div data-nudge-diff> into a read-only side-by-side diff. The old and new texts come from
 * its two child textareas (in that order) or from `data-old` and `data-new`.
 *
 * @returns the MergeView (the same one when called again on the same div)
 */
export function mountDiff(div) {
  if (diffs.has(div)) return diffs.get(div);
  const areas = div.querySelectorAll(":scope > textarea");
  const old = areas[0] ? areas[0].value : div.getAttribute("data-old") ?? "";
  const now = areas[1] ? areas[1].value : div.getAttribute("data-new") ?? "";
  const side = (area, attribute, fallback) =>
    (area ? nameOf(area, fallback).attrs : { "aria-label": div.getAttribute(attribute) || fallback });
  const oldName = side(areas[0], "data-old-label", "Old version");
  const newName = side(areas[1], "data-new-label", "New version");
  for (const area of areas) {
    area.hidden = true;
    area.style.display = "none";
  }
  const merge = new MergeView({
    a: readOnlySide(old, oldName),
    b: readOnlySide(now, newName),
    parent: div,
    gutter: true,
    highlightChanges: true,
    collapseUnchanged: { margin: 3, minSize: 6 },
  });
  merge.dom.classList.add("nudge-diff");
  diffs.set(div, merge);
  return merge;
}

/** Mount every editor and diff in `root` (and `root` itself); already mounted ones are left alone. */
export function mountAll(root = document) {
  if (!root || typeof root.querySelectorAll !== "function") return;
  const self = root.matches ? [root] : [];
  for (const el of [...self, ...root.querySelectorAll("textarea[data-nudge-editor]")]) {
    if (el.matches("textarea[data-nudge-editor]")) mount(el);
  }
  for (const el of [...self, ...root.querySelectorAll("div[data-nudge-diff]")]) {
    if (el.matches("div[data-nudge-diff]")) mountDiff(el);
  }
}

function destroyIn(root) {
  if (!root || typeof root.querySelectorAll !== "function") return;
  for (const el of [root, ...root.querySelectorAll("textarea[data-nudge-editor], div[data-nudge-diff]")]) {
    const record = editors.get(el);
    if (record) {
      record.view.destroy();
      editors.delete(el);
    }
    const merge = diffs.get(el);
    if (merge) {
      merge.destroy();
      diffs.delete(el);
    }
  }
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => mountAll());
  else mountAll();
  document.addEventListener("htmx:load", (event) => mountAll(event.detail?.elt ?? event.target));
  document.addEventListener("htmx:beforeCleanupElement", (event) => destroyIn(event.detail?.elt ?? event.target));
  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element && event.target.closest("[data-nudge-format]");
    if (!button) return;
    event.preventDefault();
    const view = editorForButton(button);
    if (!view) return;
    button.setAttribute("aria-busy", "true");
    format(view).finally(() => button.removeAttribute("aria-busy"));
  });
  // completing: "pending" while completion waits to run after typing (or for its answer), "active" while it
  // offers something, null otherwise (what a keyboard-driving test waits on before pressing Enter)
  const completing = (target) => completionStatus(editorFor(target).state);
  window.NudgeEditor = { mount, mountDiff, mountAll, editorFor, format, parser, completing };
}
