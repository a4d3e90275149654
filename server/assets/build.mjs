// Builds the admin UI's front-end assets into server/static/dist/ (committed; Nudge serves them itself,
// no CDN). Run through `make assets`, which installs the locked npm packages first.
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
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

// the rule editor (CodeMirror 6), one minified ES module
const editor = join(here, "src", "editor.js");
if (existsSync(editor)) {
  await build({
    entryPoints: [editor], bundle: true, minify: true, format: "esm", target: "es2020",
    outfile: join(dist, "editor.js"), legalComments: "linked", logLevel: "warning",
  });
}
console.log(`assets built into ${dist}`);
