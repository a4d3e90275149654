// The admin UI's template editor: CodeMirror 6 with Jinja highlighting (@codemirror/lang-jinja, over HTML for an
// html part), mounted on every <textarea data-template-editor>. The textarea stays the form field: it follows
// every change and fires `input`, so the page's htmx preview (and a plain form post) work as without the editor.
// `data-readonly` (or readonly) makes it read-only; `data-problems` (JSON [{line, message}]) marks lines.
import { EditorState } from "@codemirror/state";
import {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, highlightSpecialChars,
  drawSelection,
} from "@codemirror/view";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { bracketMatching, defaultHighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { lintGutter, setDiagnostics } from "@codemirror/lint";
import { jinja } from "@codemirror/lang-jinja";

// the names a Nudge template sees (server/engine/render.py CONTEXT_NAMES)
const variables = [
  { label: "contact", type: "variable", detail: "the contact's fields" },
  { label: "event", type: "variable", detail: "the triggering event's properties" },
  { label: "links", type: "variable", detail: "tracked links" },
  { label: "unsubscribe_url", type: "variable", detail: "the one-click unsubscribe link" },
];
const contactFields = ["email", "phone", "first_name", "last_name", "external_id", "stage", "score", "timezone", "locale"]
  .map((label) => ({ label, type: "property" }));

const theme = EditorView.baseTheme({
  "&": { border: "1px solid #8a8f98", borderRadius: "4px", fontSize: "14px", backgroundColor: "#fff" },
  "&.cm-focused": { outline: "2px solid #1d4ed8", outlineOffset: "1px" },
  ".cm-scroller": { fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace", minHeight: "3em" },
});

const mounted = new WeakMap();

/** Turn a textarea into a Jinja editor (once); returns its EditorView. */
export function mount(textarea) {
  if (mounted.has(textarea)) return mounted.get(textarea);
  const readOnly = "readonly" in textarea.dataset || textarea.readOnly;
  const label = textarea.labels && textarea.labels[0];
  if (label && !label.id) label.id = `${textarea.id}-label`;
  const attrs = label ? { "aria-labelledby": label.id } : { "aria-label": textarea.id };
  const described = textarea.getAttribute("aria-describedby");
  if (described) attrs["aria-describedby"] = described;
  const extensions = [
    lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars(), history(), drawSelection(),
    bracketMatching(), closeBrackets(), highlightActiveLine(), theme, lintGutter(),
    syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
    jinja({ variables, properties: (path) => (path.length === 1 && path[0] === "contact" ? contactFields : []) }),
    autocompletion(),
    keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, ...completionKeymap]),
    EditorView.lineWrapping,
    EditorView.contentAttributes.of(attrs),
    EditorView.updateListener.of((update) => {
      if (!update.docChanged) return;
      textarea.value = update.state.doc.toString();
      textarea.dispatchEvent(new Event("input", { bubbles: true }));
    }),
  ];
  if (readOnly) extensions.push(EditorState.readOnly.of(true));
  const wrapper = document.createElement("div");
  wrapper.className = "template-editor";
  textarea.after(wrapper);
  textarea.hidden = true;
  textarea.style.display = "none";
  const view = new EditorView({ state: EditorState.create({ doc: textarea.value, extensions }), parent: wrapper });
  view.setTabFocusMode(true); // Tab leaves the editor, as it leaves a textarea
  if (label) label.addEventListener("click", (event) => { event.preventDefault(); view.focus(); });
  markProblems(view, textarea.dataset.problems);
  mounted.set(textarea, view);
  return view;
}

/** Show the server's problems (1-based lines) as diagnostics on their lines. */
function markProblems(view, json) {
  if (!json) return;
  let problems = [];
  try { problems = JSON.parse(json); } catch { return; }
  const doc = view.state.doc;
  const diagnostics = problems.filter((p) => p.line >= 1 && p.line <= doc.lines).map((p) => {
    const line = doc.line(p.line);
    return { from: line.from, to: line.to, severity: "error", message: p.message };
  });
  view.dispatch(setDiagnostics(view.state, diagnostics));
}

/** The editor mounted on the textarea with this id, if any (for tests and page scripts). */
export function editorFor(id) {
  const el = document.getElementById(id);
  return (el && mounted.get(el)) || null;
}

function mountAll(root) {
  root.querySelectorAll("textarea[data-template-editor]").forEach(mount);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => mountAll(document));
else mountAll(document);
window.nudgeTemplateEditor = { mount, editorFor };
