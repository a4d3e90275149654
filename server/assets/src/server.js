// Talking to the Nudge server: JSON requests with the page's CSRF token, and the instance's vocabulary.

/** The CSRF token for requests made on behalf of `el`: `data-csrf`, else htmx's `hx-headers`, else a meta tag. */
export function csrfFor(el) {
  const holder = el.closest("[data-csrf]");
  if (holder) return holder.getAttribute("data-csrf");
  for (let node = el; node; node = node.parentElement) {
    const headers = node.getAttribute("hx-headers");
    if (!headers) continue;
    try {
      const token = JSON.parse(headers)["X-CSRF-Token"];
      if (token) return token;
    } catch {
      // hx-headers may hold a js: expression; it names no token we can read
    }
  }
  return document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") ?? "";
}

/**
 * POST `body` as JSON and read the JSON answer, whatever the status (a 422 may carry diagnostics).
 * Rejects with an Error saying what went wrong when there is no JSON answer.
 */
export async function postJSON(url, body, csrf) {
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
  } catch {
    throw new Error("the server could not be reached");
  }
  return readJSON(response);
}

async function readJSON(response) {
  const type = response.headers.get("Content-Type") || "";
  if (!/json/i.test(type)) throw new Error(`the server answered ${response.status} ${response.statusText}`.trim());
  try {
    return { status: response.status, data: await response.json() };
  } catch {
    throw new Error(`the server's answer (${response.status}) is not valid JSON`);
  }
}

const EMPTY = Object.freeze({
  events: [], fields: [], tags: [], templates: {}, segments: [], channels: [], steps: [], functions: [],
});
const vocabularies = new Map();

function strings(value) {
  return Array.isArray(value) ? value.filter((item) => typeof item === "string") : [];
}

/** The vocabulary answer, with anything malformed dropped (a bad field never breaks completion). */
export function normalizeVocabulary(data) {
  if (!data || typeof data !== "object") return EMPTY;
  const templates = {};
  if (data.templates && typeof data.templates === "object") {
    for (const [channel, names] of Object.entries(data.templates)) templates[channel] = strings(names);
  }
  const named = (items) => Array.isArray(items)
    ? items.filter((s) => s && typeof s.name === "string").map((s) => ({ name: s.name, detail: String(s.detail ?? "") }))
    : [];
  return {
    events: strings(data.events),
    fields: strings(data.fields).map((f) => f.replace(/^contact\./, "")),
    tags: strings(data.tags),
    templates,
    segments: strings(data.segments),
    channels: strings(data.channels).length ? strings(data.channels) : Object.keys(templates),
    steps: named(data.steps),
    functions: named(data.functions),
  };
}

/**
 * The instance's names at `url` (events, fields, tags, templates, segments, channels, plugin steps and
 * condition functions),
 * fetched once per page and shared by every editor; an empty vocabulary when there is no URL.
 * A failed fetch calls `onError` and is tried again on the next completion.
 */
export function loadVocabulary(url, onError) {
  if (!url) return Promise.resolve(EMPTY);
  if (!vocabularies.has(url)) {
    const request = fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(readJSON)
      .then(({ status, data }) => {
        if (status >= 400) throw new Error(`the server answered ${status}`);
        return normalizeVocabulary(data);
      })
      .catch((error) => {
        vocabularies.delete(url);
        onError?.(`Names for completion could not be loaded: ${error.message}.`);
        return EMPTY;
      });
    vocabularies.set(url, request);
  }
  return vocabularies.get(url);
}
