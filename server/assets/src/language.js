// The Nudge rules language for CodeMirror: the Lezer parser of nudge.grammar with the props the
// editor reads (highlighting, folding, indentation) and the highlighter that turns them into classes.
import { parser as generated } from "./parser.generated.js";
import {
  LRLanguage, LanguageSupport, foldNodeProp, indentNodeProp, delimitedIndent, syntaxHighlighting,
} from "@codemirror/language";
import { styleTags, tagHighlighter, tags as t, Tag } from "@lezer/highlight";

/** Tags of the language's own literals, so a theme can tell a duration from a number. */
export const nudgeTags = {
  duration: Tag.define(t.number),
  time: Tag.define(t.number),
  date: Tag.define(t.number),
  percent: Tag.define(t.number),
  event: Tag.define(t.name),
  function: Tag.define(t.variableName),
};

const BLOCK = "rule when then end if elif else split";
const STEPS = "send wait tag untag set score note task notify start stop";
const WORDS = "once per contact every always until quiet hours where up to for due anniversary of no at " +
  "least times within did has segment priority on cap best time before after day monday tuesday wednesday thursday friday saturday sunday";
const OPERATORS = "and or not in contains starts ends with matches is";

const highlighting = styleTags({
  [BLOCK]: t.controlKeyword,
  [STEPS]: t.keyword,
  [WORDS]: t.keyword,
  [OPERATORS]: t.operatorKeyword,
  "SetTest/set HasTag/tag InSegment/segment": t.operatorKeyword,
  "TagRef!": t.atom,
  "Now Today": t.atom,
  Bool: t.bool,
  Null: t.null,
  "RuleName/String": t.special(t.string),
  String: t.string,
  Number: t.number,
  Duration: nudgeTags.duration,
  Time: nudgeTags.time,
  Date: nudgeTags.date,
  Percent: nudgeTags.percent,
  EventName: nudgeTags.event,
  Path: t.propertyName,
  "Channel!": t.namespace,
  TemplateName: t.labelName,
  "StepName!": t.function(t.variableName),
  "FunctionName!": nudgeTags.function,
  "Word!": t.name,
  Comment: t.lineComment,
  CompareOp: t.compareOperator,
  ArithOp: t.arithmeticOperator,
  '"="': t.definitionOperator,
  '"(" ")"': t.paren,
  '"[" "]"': t.squareBracket,
  '"," ";" ":"': t.separator,
});

/** Fold a block from where it starts (the end of its `then` line) to the end of its last step. */
function foldBlock(node) {
  const last = node.lastChild;
  return last && last.to > node.from ? { from: node.from, to: last.to } : null;
}

/** Fold a split from its `split` keyword to the end of the line before its `end`. */
function foldSplit(node, state) {
  const head = node.firstChild, end = node.getChild("end");
  if (!head || !end) return null;
  const to = state.doc.lineAt(end.from).from - 1;
  return to > head.to ? { from: head.to, to } : null;
}

/** Indent the inside of a construct one unit deeper; lines that start with one of `closers` line up with it. */
function inside(closers) {
  return (cx) => (closers.test(cx.textAfter) ? cx.baseIndent : cx.baseIndent + cx.unit);
}

/** A rule's body: steps one unit deeper, its `end` and what follows it at the rule's level. */
function bodyIndent(cx) {
  const end = cx.node.getChild("end");
  if ((end && cx.pos >= end.to) || /^\s*(end|rule|when)\b/.test(cx.textAfter)) return cx.baseIndent;
  return cx.baseIndent + cx.unit;
}

/**
 * Inside a split: arms one unit deeper than `split`, `end` in line with it, and the steps of an arm
 * written on the lines under its `50%:` one unit deeper than the arm.
 */
function splitIndent(cx, split) {
  const base = cx.baseIndentFor(split);
  if (/^\s*end\b/.test(cx.textAfter)) return base;
  if (/^\s*\d+%/.test(cx.textAfter)) return base + cx.unit;
  const arms = split.getChildren("SplitArm").filter((arm) => arm.from < cx.pos);
  const arm = arms[arms.length - 1];
  const colon = arm && arm.getChild(":");
  if (colon && !cx.lineAt(colon.to).text.slice(colon.to - cx.lineAt(colon.to).from).replace(/#.*/, "").trim()) {
    return cx.lineIndent(arm.from) + cx.unit;
  }
  return base + cx.unit;
}

/** The last line with something on it before `cx.pos`: its text (comment dropped) and its indentation. */
function previousLine(cx) {
  for (let pos = cx.pos, seen = 0; pos > 0 && seen < 100; seen++) {
    const line = cx.lineAt(pos - 1, -1);
    const text = line.text.replace(/#[^"]*$/, "").trimEnd();
    if (text.trim()) return { text, indent: cx.lineIndent(line.from, -1) };
    pos = line.from;
  }
  return null;
}

/**
 * Where the tree has nothing to say (a block still empty, text being typed): one unit deeper after a
 * line that opens a block or names a rule, else the previous line's indentation.
 */
function fallbackIndent(cx) {
  const before = previousLine(cx);
  if (!before) return 0;
  if (/^\s*(when|rule)\b/.test(cx.textAfter)) return 0;
  const opens = /(\b(then|else)|^\s*split|%:)$/.test(before.text) || /^\s*rule\b/.test(before.text);
  if (opens) return before.indent + cx.unit;
  if (/^\s*(end|else|elif)\b/.test(cx.textAfter)) return Math.max(0, before.indent - cx.unit);
  return before.indent;
}

/** The Lezer parser of the rules language, configured with the editor's props. */
export const parser = generated.configure({
  props: [
    highlighting,
    foldNodeProp.add({ Block: foldBlock, SplitStep: foldSplit }),
    indentNodeProp.add({
      Program: fallbackIndent,
      Body: bodyIndent,
      RuleHead: inside(/^\s*(when|rule)\b/),
      IfStep: inside(/^\s*(end|else|elif)\b/),
      ElifClause: inside(/^\s*(end|else|elif)\b/),
      WaitForStep: inside(/^\s*(end|else)\b/),
      SplitStep: (cx) => splitIndent(cx, cx.node),
      SplitArm: (cx) => splitIndent(cx, cx.node.parent),
      ParenExpr: delimitedIndent({ closing: ")" }),
      List: delimitedIndent({ closing: "]" }),
    }),
  ],
});

export const nudgeLanguage = LRLanguage.define({
  name: "nudge",
  parser,
  languageData: {
    commentTokens: { line: "#" },
    closeBrackets: { brackets: ["(", "[", '"'] },
    indentOnInput: /^\s*(end|else|elif|when|rule|\d+%)$/,
  },
});

/** Classes the highlighter gives to tokens (`nk-keyword`, `nk-string`, `nk-duration` …), coloured by the theme. */
export const nudgeHighlighter = tagHighlighter([
  { tag: t.controlKeyword, class: "nk-keyword nk-block" },
  { tag: t.operatorKeyword, class: "nk-keyword nk-operator" },
  { tag: t.keyword, class: "nk-keyword" },
  { tag: [t.bool, t.null, t.atom], class: "nk-atom" },
  { tag: t.special(t.string), class: "nk-string nk-rule-name" },
  { tag: t.string, class: "nk-string" },
  { tag: nudgeTags.duration, class: "nk-duration" },
  { tag: nudgeTags.time, class: "nk-time" },
  { tag: nudgeTags.date, class: "nk-date" },
  { tag: nudgeTags.percent, class: "nk-percent" },
  { tag: t.number, class: "nk-number" },
  { tag: nudgeTags.event, class: "nk-event" },
  { tag: t.propertyName, class: "nk-path" },
  { tag: t.namespace, class: "nk-channel" },
  { tag: t.labelName, class: "nk-template" },
  { tag: nudgeTags.function, class: "nk-function" },
  { tag: t.function(t.variableName), class: "nk-plugin-step" },
  { tag: t.lineComment, class: "nk-comment" },
  { tag: [t.compareOperator, t.arithmeticOperator, t.definitionOperator], class: "nk-operator-sign" },
  { tag: t.invalid, class: "nk-invalid" },
]);

/** The language with its highlighting: what an editor (or one side of a diff) needs to show rules. */
export function nudge() {
  return new LanguageSupport(nudgeLanguage, [syntaxHighlighting(nudgeHighlighter)]);
}
