/* Nudge site tracking: reports page visits of people who came from a tracked link.
 * First-party: talks only to the Nudge server it was loaded from; loads nothing else.
 * Anonymous visitors (no id from a tracked link) are not reported at all; add data-nudge-cookie to
 * the script tag when Nudge runs on the same site, so the id cookie set by the click redirect counts too. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) { return; }
  var origin = new URL(script.src).origin;
  var KEY = "nudge_vid";
  var params = new URLSearchParams(window.location.search);
  var id = params.get("_nv");
  try {
    if (id) { window.localStorage.setItem(KEY, id); } else { id = window.localStorage.getItem(KEY); }
  } catch (e) { /* storage disabled: use the id from this URL only */ }
  if (id && params.has("_nv") && window.history && window.history.replaceState) {
    params.delete("_nv");
    var clean = window.location.pathname + (params.toString() ? "?" + params.toString() : "") + window.location.hash;
    window.history.replaceState(window.history.state, "", clean);
  }
  function visit() {
    var body = JSON.stringify({url: window.location.href, referrer: document.referrer || null, v: id || null});
    var blob = new Blob([body], {type: "text/plain"});
    if (navigator.sendBeacon && navigator.sendBeacon(origin + "/t/visit", blob)) { return; }
    fetch(origin + "/t/visit", {method: "POST", body: body, mode: "no-cors", credentials: "include", keepalive: true});
  }
  if (id || script.hasAttribute("data-nudge-cookie")) { visit(); }
})();
