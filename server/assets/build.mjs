// Builds the admin UI's front-end assets into server/static/dist/ (committed; Nudge serves them itself,
// no CDN). Run through `make assets`, which installs the locked npm packages first.
//
// The editor bundle starts with a stamp: the sha256 of its sources (build.mjs, package-lock.json and
// every file under src/ but the generated parser), computed exactly as tests/ui/test_editor_bundle.py
// recomputes it, so a test fails when the committed bundle is older than its sources.
import { copyFile, mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { createHash } from "node:crypto";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { buildParserFile } from "@lezer/generator";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "..", "static", "dist");
await mkdir(dist, { recursive: true });

// htmx, as published (the UI's partial page updates)
await copyFile(join(here, "node_modules", "htmx.org", "dist", "htmx.min.js"), join(dist, "htmx.min.js"));

// the Lezer grammar of the rules language -> a generated parser module the editor imports
const grammar = join(here, "src", "nudge.grammar");
if (existsSync(grammar)) {
  const { parser, terms } = buildParserFile(await readFile(grammar, "utf8"), { fileName: grammar });
  await writeFile(join(here, "src", "parser.generated.js"), parser);
  await writeFile(join(here, "src", "parser.terms.generated.js"), terms);
}

/** Every file under `dir`, as paths relative to this folder with forward slashes. */
async function filesUnder(dir) {
  const found = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await filesUnder(path)));
    else found.push(relative(here, path).split(sep).join("/"));
  }
  return found;
}

/** sha256 over each source's path, byte length and bytes, in sorted path order. */
async function sourcesStamp() {
  const paths = ["build.mjs", "package-lock.json", ...(await filesUnder(join(here, "src")))]
    .filter((path) => !path.endsWith(".generated.js"))
    .sort();
  const hash = createHash("sha256");
  for (const path of paths) {
    const bytes = await readFile(join(here, path));
    hash.update(`${path}\n${bytes.length}\n`);
    hash.update(bytes);
  }
  return hash.digest("hex");
}

/** The license of every package the bundle includes, with its full text, as one file next to it. */
async function licenses(metafile, bundle) {
  const packages = new Map();
  const used = Object.values(metafile.outputs).flatMap((output) =>
    Object.entries(output.inputs).filter(([, info]) => info.bytesInOutput > 0).map(([input]) => input));
  for (const input of used) {
    const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (match) packages.set(match[1], join(here, "node_modules", match[1]));
  }
  const parts = [`Third-party software in ${bundle}, with its licenses.\n`];
  for (const name of [...packages.keys()].sort()) {
    const dir = packages.get(name);
    const meta = JSON.parse(await readFile(join(dir, "package.json"), "utf8"));
    const file = (await readdir(dir)).find((f) => /^(license|licence|copying)(\.|$)/i.test(f));
    if (!file) throw new Error(`${name} has no license file: check its terms before bundling it`);
    const text = (await readFile(join(dir, file), "utf8")).trim();
    parts.push(`${"=".repeat(72)}\n${name} ${meta.version} (${meta.license})\n${"=".repeat(72)}\n${text}\n`);
  }
  return parts.join("\n");
}

/**
 * Bundle `src/<source>` into one minified ES module `dist/<out>`, stamped with the sources' hash, with the
 * licenses of the packages it includes next to it (`<out>.LICENSES.txt`).
 */
async function bundle(source, out, title) {
  const entry = join(here, "src", source);
  if (!existsSync(entry)) return;
  const stamp = await sourcesStamp();
  const result = await build({
    entryPoints: [entry], bundle: true, minify: true, format: "esm", target: "es2020",
    outfile: join(dist, out), legalComments: "none", logLevel: "warning", metafile: true,
    banner: { js: `/* Nudge ${title}. sources-sha256:${stamp} Third-party licenses: ${out}.LICENSES.txt */` },
  });
  await writeFile(join(dist, `${out}.LICENSES.txt`), await licenses(result.metafile, `${out} (the Nudge ${title})`));
}

// the rule editor (CodeMirror 6 with the Nudge language)
await bundle("editor.js", "editor.js", "rule editor");
// the template editor (CodeMirror 6 with @codemirror/lang-jinja, over HTML for an html part)
await bundle("template-editor.js", "template-editor.js", "template editor");
console.log(`assets built into ${dist}`);
