//! Shortens the browser module's import, export and module names and rewrites the wasm-bindgen
//! glue to match. wasm-bindgen names each import after its JS function plus a 16-digit hash
//! (`__wbg_setAttribute_f75317b2b5cabfb4`), and those names sit in both the module and the glue;
//! binaryen's `--minify-imports-and-exports-and-modules` renames them in the module (`A`) and
//! prints the mapping, and this applies the mapping to the glue and its type declarations.
//! Every rename is checked: an import the glue does not define exactly once, or an export the
//! glue reaches that the module no longer has, fails the build instead of shipping a module
//! that cannot link.
//!
//! Usage: node scripts/lib/wasm-names.mjs MAPPING.json PKG_DIR NAME
//! (checks PKG_DIR/NAME_bg.wasm, the renamed module, against the mapping; rewrites PKG_DIR/NAME.js,
//! PKG_DIR/NAME.d.ts and PKG_DIR/NAME_bg.wasm.d.ts in place).

import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** A property key or member access for `name`: bare when it is an identifier, quoted otherwise. */
const key = (name) => (IDENTIFIER.test(name) ? name : JSON.stringify(name));
const member = (name) => (IDENTIFIER.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`);

/** Parses binaryen's mapping: `{imports: [[module, name, newName]…], exports: [[name, newName]…]}`. */
export function parseMapping(text) {
  const mapping = JSON.parse(text);
  if (!Array.isArray(mapping.imports) || !Array.isArray(mapping.exports)) throw new Error("wasm-names: the mapping has no imports/exports lists");
  return mapping;
}

/**
 * The one module name the renamed wasm imports from (binaryen does not print it), after checking
 * that the module's imports and exports are exactly the mapping's new names.
 */
export function checkModule(wasmBytes, { imports, exports }) {
  const compiled = new WebAssembly.Module(wasmBytes);
  const moduleImports = WebAssembly.Module.imports(compiled);
  const modules = [...new Set(moduleImports.map((entry) => entry.module))];
  if (modules.length !== 1) throw new Error(`wasm-names: the module imports from ${modules.length} modules, not one`);
  const same = (a, b) => {
    const [sortedA, sortedB] = [[...a].sort(), [...b].sort()];
    return sortedA.length === sortedB.length && sortedA.every((value, index) => value === sortedB[index]);
  };
  if (!same(moduleImports.map((entry) => entry.name), imports.map(([, , renamed]) => renamed))) throw new Error("wasm-names: the module's imports are not the mapping's");
  if (!same(WebAssembly.Module.exports(compiled).map((entry) => entry.name), exports.map(([, renamed]) => renamed))) throw new Error("wasm-names: the module's exports are not the mapping's");
  return modules[0];
}

/**
 * Rewrites wasm-bindgen `--target web` glue for the renamed module: each import's key in the
 * imports object, the module name it is filed under, and every `wasm.<export>` access.
 * Throws when the glue does not match the mapping.
 */
export function renameGlue(glue, { imports, exports }, newModule) {
  let out = glue;
  const modules = new Set(imports.map(([module]) => module));
  for (const module of modules) {
    const filed = new RegExp(`${escape(JSON.stringify(module))}(\\s*:\\s*import\\d+)`, "g");
    const found = out.match(filed)?.length ?? 0;
    if (found !== 1) throw new Error(`wasm-names: the glue files its imports under ${JSON.stringify(module)} ${found} times, not once`);
    out = out.replace(filed, (_, rest) => `${JSON.stringify(newModule)}${rest}`);
  }
  for (const [, name, renamed] of imports) {
    const definition = new RegExp(`(^|[\\s{,])${escape(name)}(\\s*:)`, "gm");
    const found = out.match(definition)?.length ?? 0;
    if (found !== 1) throw new Error(`wasm-names: the glue defines the import ${name} ${found} times, not once`);
    out = out.replace(definition, (_, before, colon) => `${before}${key(renamed)}${colon}`);
  }
  const renamedExports = new Map(exports);
  out = out.replace(/\bwasm\.([A-Za-z_$][\w$]*)/g, (access, name) => {
    if (!renamedExports.has(name)) throw new Error(`wasm-names: the glue reaches wasm.${name}, which the module does not export`);
    return `wasm${member(renamedExports.get(name))}`;
  });
  return out;
}

/** Rewrites the export names in the type declarations (`readonly name:` / `export const name:`). */
export function renameDeclarations(declarations, { exports }) {
  let out = declarations;
  for (const [name, renamed] of exports) {
    out = out.replace(new RegExp(`(readonly |export const )${escape(name)}(\\s*:)`, "g"), (_, before, colon) => `${before}${key(renamed)}${colon}`);
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [mappingPath, pkgDir, name] = process.argv.slice(2);
  if (!name) {
    console.error("usage: node scripts/lib/wasm-names.mjs MAPPING.json PKG_DIR NAME");
    process.exit(2);
  }
  const mapping = parseMapping(readFileSync(mappingPath, "utf8"));
  const newModule = checkModule(readFileSync(join(pkgDir, `${name}_bg.wasm`)), mapping);
  const glue = join(pkgDir, `${name}.js`);
  writeFileSync(glue, renameGlue(readFileSync(glue, "utf8"), mapping, newModule));
  for (const declarations of [join(pkgDir, `${name}.d.ts`), join(pkgDir, `${name}_bg.wasm.d.ts`)]) {
    if (existsSync(declarations)) writeFileSync(declarations, renameDeclarations(readFileSync(declarations, "utf8"), mapping));
  }
}
