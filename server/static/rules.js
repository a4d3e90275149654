/* The rules editor page, with no inline script anywhere.
 *
 * - With the CodeMirror bundle (/static/dist/editor.js, window.NudgeEditor) the editor shows problems, fixes and
 *   formats in place: the plain textarea's Check/Format buttons and problem list ([data-fallback]) are hidden and
 *   the bundle's Format button ([data-nudge-format]) is shown. Without it, the reverse.
 * - In the plain textarea, a problem's "Line N, column C" link puts the cursor there.
 */
(function () {
  "use strict";

  function enhance() {
    var bundle = !!window.NudgeEditor;
    document.querySelectorAll("[data-fallback]").forEach(function (el) { el.hidden = bundle; });
    document.querySelectorAll("[data-nudge-format]").forEach(function (el) { el.hidden = !bundle; });
  }

  document.addEventListener("DOMContentLoaded", enhance);
  document.addEventListener("htmx:load", enhance);

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("[data-goto-line]");
    var area = document.getElementById("rule-source");
    if (!link || !area) { return; }
    event.preventDefault();
    var lines = area.value.split("\n");
    var line = Math.min(Math.max(parseInt(link.getAttribute("data-goto-line"), 10) || 1, 1), lines.length);
    var offset = 0;
    for (var i = 0; i < line - 1; i++) { offset += lines[i].length + 1; }
    offset += Math.min(Math.max((parseInt(link.getAttribute("data-goto-col"), 10) || 1) - 1, 0), lines[line - 1].length);
    area.focus();
    area.setSelectionRange(offset, offset);
  });
})();
