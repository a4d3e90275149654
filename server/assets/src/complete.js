// Autocompletion: the language's keywords where they fit, and the instance's names (events, contact
// fields, tags, channels and their templates, segments, plugin steps, condition functions) where the
// language expects them.
import { syntaxTree } from "@codemirror/language";
import { insertCompletionText, pickedCompletion } from "@codemirror/autocomplete";

const STEPS = [
  ["send", "CHANNEL TEMPLATE"], ["wait", "3d · until … · for EVENT up to 3d"], ["if", "CONDITION then … end"],
  ["split", "50%: … 50%: … end"], ["tag", '"name"'], ["untag", '"name"'], ["set", "contact.FIELD = VALUE"],
  ["score", "+10 · -5"], ["note", '"text"'], ["task", '"text" for "team" due 1d'], ["notify", '"team" "text"'],
  ["start", '"Other rule"'], ["stop", "end this journey"],
].map(([label, detail]) => ({ label, detail, type: "keyword" }));

const HEADERS = [
  ["once per contact", "at most once ever"], ["always", "every trigger enters"],
  ["until", "EVENT: the goal"], ["quiet hours", "21:00-08:00"], ["priority", "high · normal · low"],
  ["on cap", "skip · wait"], ["when", "TRIGGER then …"],
].map(([label, detail]) => ({ label, detail, type: "keyword" }));

const TOP = [["rule", '"Name"'], ["when", "TRIGGER then …"]]
  .map(([label, detail]) => ({ label, detail, type: "keyword" }));

const TRIGGERS = [
  ["every day at", "a schedule"], ["every monday at", "a weekly schedule"], ["anniversary of", "contact.FIELD"],
  ["no", "EVENT for 14d"],
].map(([label, detail]) => ({ label, detail, type: "keyword" }));

const EXPRESSION = [
  "and", "or", "not", "then", "in", "not in", "contains", "starts with", "ends with", "matches", "is set",
  "is not set", "has tag", "in segment", "did", "where", "at least", "times", "within", "now", "today", "true",
  "false", "null", "tag",
].map((label) => ({ label, type: "keyword" }));

function closers(context) {
  const words = ["end"];
  if (context.inIf) words.push("elif", "else");
  else if (context.inWaitFor) words.push("else");
  if (context.topLevel) words.push("rule", "when");
  return words.map((label) => ({ label, type: "keyword", boost: -1 }));
}

/** Where the structure puts `pos`: among steps, header lines, a split's arms or between rules. */
export function structureAt(state, pos) {
  // look at the last thing written before the word being typed: trailing blanks belong to no node
  const text = state.sliceDoc(Math.max(0, pos - 2000), pos);
  const at = pos - (text.length - text.trimEnd().length);
  const context = { kind: "top", inIf: false, inWaitFor: false, topLevel: false };
  let found = null;
  for (let node = syntaxTree(state).resolveInner(at, -1); node; node = node.parent) {
    if (!found) {
      if (node.name === "Block" || node.name === "SplitArm") found = "step";
      else if (node.name === "SplitStep") found = node.getChild("end") ? "step" : "split";
      else if (node.name === "RuleHead") found = "header";
      else if (node.name === "Body") {
        const then = node.getChild("then"), end = node.getChild("end");
        if (end && at >= end.to) found = "top";
        else found = then && at >= then.to ? "step" : "expression";
      }
    }
    if (node.name === "IfStep" && !node.getChild("end") && !context.inWaitFor) context.inIf = true;
    if (node.name === "WaitForStep" && !node.getChild("end") && !context.inIf) context.inWaitFor = true;
    if (node.name === "Body" && !node.getChild("end")) context.topLevel = true;
  }
  context.kind = found ?? "top";
  if (context.kind === "top") context.topLevel = true;
  return context;
}

function quote(text) {
  return text.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
}

/** Insert `text`, replacing a closing quote right after the cursor (closeBrackets typed it). */
function insertQuoted(text) {
  return (view, completion, from, to) => {
    const end = view.state.sliceDoc(to, to + 1) === '"' ? to + 1 : to;
    const insert = insertCompletionText(view.state, text, from, end);
    view.dispatch({ ...insert, annotations: pickedCompletion.of(completion) });
  };
}

/** Names in quotes (tags, segments): `from` is just after the opening quote when one is typed. */
function quotedOptions(from, hasQuote, names, type) {
  return {
    from,
    options: names.map((name) => ({
      label: name, displayLabel: `"${name}"`, type,
      apply: insertQuoted(hasQuote ? `${quote(name)}"` : `"${quote(name)}"`),
    })),
    validFor: /^[^"]*$/,
  };
}

/** The string `before` is inside, if any: index of its opening quote. */
function openString(before) {
  const rest = before.replace(/"(\\.|[^"\\])*"/g, (m) => " ".repeat(m.length));
  const hash = rest.indexOf("#");
  const quoteAt = rest.indexOf('"');
  if (hash >= 0 && (quoteAt < 0 || hash < quoteAt)) return { comment: true };
  return { quoteAt };
}

const paths = (vocab) => vocab.fields.map((field) => ({ label: `contact.${field}`, type: "property" }));

/**
 * A completion source for the rules language.
 *
 * @param vocabulary a function returning (a promise of) the instance's names, see server.js
 */
export function nudgeCompletions(vocabulary) {
  const source = completionsFor(vocabulary);
  return async (context) => withoutTypedWord(await source(context), context);
}

/**
 * A word typed out in full has nothing left to complete: Enter after `then`, `stop` or `end` starts a new line
 * instead of picking the same word from the list. Options with their own `apply` (quoted names, `f(`) stay.
 * `validFor` turns false on such a word, so a list kept from an earlier keystroke is asked for again.
 */
function withoutTypedWord(result, context) {
  if (!result) return result;
  const plain = new Set(result.options.filter((option) => !option.apply).map((option) => option.label));
  const typed = context.state.sliceDoc(result.from, context.pos);
  const options = plain.has(typed) ? result.options.filter((o) => o.apply || o.label !== typed) : result.options;
  if (!options.length) return null;
  const valid = result.validFor;
  return { ...result, options, validFor: (text) => !plain.has(text) && valid.test(text) };
}

function completionsFor(vocabulary) {
  return async (context) => {
    const { state, pos, explicit } = context;
    const line = state.doc.lineAt(pos);
    const before = line.text.slice(0, pos - line.from);
    const inside = openString(before);
    if (inside.comment) return null;
    const vocab = await vocabulary();
    if (context.aborted) return null;

    if (inside.quoteAt >= 0) {
      const head = before.slice(0, inside.quoteAt);
      const from = line.from + inside.quoteAt + 1;
      if (/(^|[\s;:(])(un)?tag\s*$|\bhas\s+tag\s*$|\btag\s*(==|!=)\s*$|\btag\s+(not\s+)?in\s*\[[^\]]*$/.test(head)) {
        return quotedOptions(from, true, vocab.tags, "text");
      }
      if (/\bin\s+segment\s*$/.test(head)) return quotedOptions(from, true, vocab.segments, "text");
      return null;
    }

    let m;
    if ((m = /(?:^|[;:]|\bthen|\belse)\s*(?:un)?tag\s+(\w*)$|\bhas\s+tag\s+(\w*)$/.exec(before))) {
      const word = m[1] ?? m[2];
      return quotedOptions(pos - word.length, false, vocab.tags, "text");
    }
    if ((m = /\bin\s+segment\s+(\w*)$/.exec(before))) {
      return quotedOptions(pos - m[1].length, false, vocab.segments, "text");
    }
    if ((m = /\bsend\s+([A-Za-z_]\w*)\s+([\w-]*)$/.exec(before))) {
      const names = vocab.templates[m[1]] ?? [];
      const options = names.map((label) => ({ label, type: "text", detail: m[1] }));
      return { from: pos - m[2].length, options, validFor: /^[\w-]*$/ };
    }
    if ((m = /\bsend\s+(\w*)$/.exec(before))) {
      const options = vocab.channels.map((label) => ({ label, type: "type" }));
      return { from: pos - m[1].length, options, validFor: /^\w*$/ };
    }
    m = /(\bwhen|\buntil|\bwait\s+for|\bdid|\bwhen\s+no)\s+([\w.]*)$/.exec(before);
    if (m && !/\bwait\s+until\s+[\w.]*$/.test(before)) {
      const events = vocab.events.map((label) => ({ label, type: "constant" }));
      const options = m[1] === "when" ? [...events, ...TRIGGERS] : events;
      return { from: pos - m[2].length, options, validFor: /^[\w.]*$/ };
    }
    if ((m = /\b(anniversary\s+of|before|after)\s+([\w.]*)$/.exec(before))) {
      return { from: pos - m[2].length, options: paths(vocab), validFor: /^[\w.]*$/ };
    }
    if ((m = /\bcontact\.(\w*)$/.exec(before))) {
      const options = vocab.fields.map((label) => ({ label, type: "property" }));
      return { from: pos - m[1].length, options, validFor: /^\w*$/ };
    }

    const start = /(^|;|\bthen|\belse|%:)\s*(\w*)$/.exec(before);
    if (start) {
      const word = start[2];
      if (!word && !explicit) return null;
      const from = pos - word.length;
      const where = structureAt(state, from);
      if (start[1] !== "") where.kind = "step"; // after `then`, `else`, `;` or an arm's `%:` comes a step
      let options;
      if (where.kind === "step") {
        const plugins = vocab.steps.map((s) => ({ label: s.name, detail: s.detail, type: "function" }));
        options = [...STEPS, ...plugins, ...closers(where)];
      } else if (where.kind === "split") {
        options = [{ label: "50%:", type: "keyword" }, { label: "end", type: "keyword" }];
      } else if (where.kind === "header") {
        options = HEADERS;
      } else if (where.kind === "top") {
        options = TOP;
      }
      if (options) return { from, options, validFor: /^\w*$/ };
    }

    const word = /[\w.]*$/.exec(before)[0];
    if (!word && !explicit) return null;
    return {
      from: pos - word.length,
      options: [...EXPRESSION, ...paths(vocab), { label: "event.", type: "variable" },
        ...vocab.functions.map((f) => ({ label: f.name, detail: f.detail, type: "function", apply: `${f.name}(` }))],
      validFor: /^[\w.]*$/,
    };
  };
}
