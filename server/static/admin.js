/* Nudge admin UI: the flash area for htmx requests, and confirmations, with no inline script anywhere.
 *
 * - The server sends results and errors of an htmx request as the "nudge:flash" event (HX-Trigger header);
 *   they are written into the layout's role="status" (results) or role="alert" (errors) area.
 * - An htmx request that fails (4xx/5xx) without such a message, or that cannot reach Nudge, says so in
 *   the alert area instead of failing silently.
 * - A field marked invalid whose error a live check removed (htmx, out of band) is unmarked.
 * - A message may carry a link ({href, text}: a path on this site), shown after its text.
 * - <form data-confirm="text"> asks before it is submitted (htmx's hx-confirm does the same for htmx requests).
 */
(function () {
  "use strict";
  var CATEGORIES = {success: "status", info: "status", warning: "alert", error: "alert"};

  function show(messages) {
    var status = document.getElementById("flash-status");
    var alert = document.getElementById("flash-alert");
    if (!status || !alert) { return; }
    status.textContent = "";
    alert.textContent = "";
    messages.forEach(function (message) {
      var category = CATEGORIES[message.category] ? message.category : "error";
      var p = document.createElement("p");
      p.className = "flash-message flash-" + category;
      p.textContent = String(message.text);  // text, never HTML
      var link = message.link;
      if (link && typeof link.href === "string" && link.href.charAt(0) === "/" && link.href.charAt(1) !== "/") {
        var a = document.createElement("a");  // only a path on this site (e.g. sign in again after signing out)
        a.href = link.href;
        a.textContent = String(link.text || link.href);
        p.appendChild(document.createTextNode(" "));
        p.appendChild(a);
      }
      (CATEGORIES[category] === "alert" ? alert : status).appendChild(p);
    });
  }

  function carriesFlash(xhr) {
    var trigger = xhr && xhr.getResponseHeader("HX-Trigger");
    return !!trigger && trigger.indexOf("nudge:flash") !== -1;
  }

  document.addEventListener("nudge:flash", function (event) {
    show((event.detail && event.detail.messages) || []);
  });

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if (carriesFlash(xhr)) { return; }
    show([{category: "error", text: "The request failed: the server answered " + xhr.status + " " +
      (xhr.statusText || "") + ". Reload the page and try again."}]);
  });

  function unreachable() {
    show([{category: "error", text: "Nudge could not be reached. Check your connection and try again."}]);
  }
  document.addEventListener("htmx:sendError", unreachable);
  document.addEventListener("htmx:timeout", unreachable);

  /* <form data-pieces="URL" data-piece-bytes="N"> with a file input (the Imports page): the file is sent to URL in
   * pieces of N bytes (each POST stays under the server's body limit, however large the file), then the form is
   * submitted with the upload's token in its "upload" field instead of the file. */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.getAttribute || !form.getAttribute("data-pieces") || form.getAttribute("data-sent")) { return; }
    var input = form.querySelector("input[type=file]");
    if (!input || !input.files || !input.files.length || !input.files[0].size || !window.fetch) { return; }
    event.preventDefault();
    var file = input.files[0];
    var url = form.getAttribute("data-pieces");
    var bytes = parseInt(form.getAttribute("data-piece-bytes"), 10) || 4194304;
    var csrf = form.querySelector("input[name=csrf_token]").value;
    var status = document.getElementById("upload-progress");
    var upload = "";
    var offset = 0;
    function next() {
      if (offset >= file.size) {
        form.querySelector("input[name=upload]").value = upload;
        form.querySelector("input[name=file_name]").value = file.name;
        input.disabled = true;  // sent already, in pieces
        form.setAttribute("data-sent", "1");
        form.submit();
        return;
      }
      fetch(url + "?upload=" + encodeURIComponent(upload) + "&offset=" + offset, {
        method: "POST", body: file.slice(offset, offset + bytes), credentials: "same-origin",
        headers: {"X-CSRF-Token": csrf, "Content-Type": "application/octet-stream"}
      }).then(function (response) {
        if (!response.ok) { return response.text().then(function (text) { throw new Error(text); }); }
        return response.json();
      }).then(function (answer) {
        upload = answer.upload;
        offset = answer.size;
        if (status) { status.textContent = "Uploading: " + Math.floor(offset * 100 / file.size) + "%"; }
        next();
      }).catch(function (error) {
        if (status) { status.textContent = ""; }
        show([{category: "error", text: "The file was not uploaded: " + error.message}]);
      });
    }
    next();
  });

  /* A refused save marks a field invalid, with its error under it. When a live check removes that error
   * (out of band: the condition checks now), the field is no longer marked: class, aria-invalid and the
   * aria-describedby of the error that is gone. */
  document.addEventListener("htmx:afterSettle", function () {
    document.querySelectorAll(".field.invalid").forEach(function (field) {
      if (field.querySelector(".field-error")) { return; }
      field.classList.remove("invalid");
      field.querySelectorAll("[aria-invalid]").forEach(function (control) {
        control.removeAttribute("aria-invalid");
        var left = (control.getAttribute("aria-describedby") || "").split(/\s+/).filter(function (id) {
          return id && document.getElementById(id);
        });
        if (left.length) { control.setAttribute("aria-describedby", left.join(" ")); }
        else { control.removeAttribute("aria-describedby"); }
      });
    });
  });

  document.addEventListener("submit", function (event) {
    if (event.defaultPrevented) { return; }  // htmx took the form over (and asked with hx-confirm)
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
})();

/* <button data-copy="ID"> copies the text of the element with that id (the embed code of a form): through the
 * Clipboard API where the page may use it, else the text is selected for Ctrl+C / Cmd+C. */
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    var text = source.value !== undefined ? source.value : source.textContent;
    function selectAll() {
      source.focus();
      if (source.select) { source.select(); }
      button.textContent = "Selected: press Ctrl+C (⌘C) to copy";
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; }, selectAll);
    } else {
      selectAll();
    }
  });
})();
