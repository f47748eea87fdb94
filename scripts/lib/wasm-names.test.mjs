//! Tests for scripts/lib/wasm-names.mjs: the glue is renamed to match binaryen's mapping, and any
//! mismatch between glue, mapping and module fails instead of shipping a module that cannot link.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkModule, parseMapping, renameDeclarations, renameGlue } from "./wasm-names.mjs";

/** The shape of wasm-bindgen 0.2.130's `--target web` glue, cut down to one of each thing. */
const GLUE = `
export class CallClient {
    call() {
        wasm.callclient_call(this.__wbg_ptr);
    }
}
function __wbg_get_imports() {
    const import0 = {
        __proto__: null,
        __wbg_setAttribute_f75317b2b5cabfb4: function(arg0, arg1, arg2, arg3, arg4) {
            arg0.setAttribute(getStringFromWasm0(arg1, arg2), getStringFromWasm0(arg3, arg4));
        },
        __wbindgen_init_externref_table: function() {
            const table = wasm.__wbindgen_externrefs;
        },
    };
    return {
        __proto__: null,
        "./web_client_bg.js": import0,
    };
}
function wasm_bindgen__convert__closures_____invoke__h5ac344fd288085ff(arg0) {
    wasm.wasm_bindgen__convert__closures_____invoke__h5ac344fd288085ff(arg0);
}
`;

const MAPPING = {
  imports: [
    ["./web_client_bg.js", "__wbg_setAttribute_f75317b2b5cabfb4", "$a"],
    ["./web_client_bg.js", "__wbindgen_init_externref_table", "Ab"],
  ],
  exports: [
    ["callclient_call", "Kb"],
    ["__wbindgen_externrefs", "hc"],
    ["wasm_bindgen__convert__closures_____invoke__h5ac344fd288085ff", "$b"],
  ],
};

test("imports, their module and every export access take the mapping's names", () => {
  const renamed = renameGlue(GLUE, MAPPING, "a");
  assert.match(renamed, /^\s+\$a: function\(arg0, arg1, arg2, arg3, arg4\)/m);
  assert.match(renamed, /^\s+Ab: function\(\)/m);
  assert.match(renamed, /"a": import0/);
  assert.match(renamed, /wasm\.Kb\(this\.__wbg_ptr\)/);
  assert.match(renamed, /const table = wasm\.hc;/);
  assert.match(renamed, /wasm\.\$b\(arg0\)/, "a $ in a new name is not a replacement pattern");
  // The glue's own function of the same name as an export keeps its name.
  assert.match(renamed, /^function wasm_bindgen__convert__closures_____invoke__h5ac344fd288085ff\(arg0\)/m);
  assert.doesNotMatch(renamed, /__wbg_setAttribute|web_client_bg\.js|wasm\.callclient/);
  // What the glue does is untouched.
  assert.match(renamed, /arg0\.setAttribute\(getStringFromWasm0\(arg1, arg2\)/);
});

test("a name that is not an identifier is quoted", () => {
  const renamed = renameGlue(GLUE, {
    imports: [[MAPPING.imports[0][0], MAPPING.imports[0][1], "1x"], MAPPING.imports[1]],
    exports: [["callclient_call", "not-an-identifier"], ...MAPPING.exports.slice(1)],
  }, "a");
  assert.match(renamed, /"1x": function/);
  assert.match(renamed, /wasm\["not-an-identifier"\]\(this\.__wbg_ptr\)/);
});

test("an import the glue does not define exactly once refuses", () => {
  const missing = { ...MAPPING, imports: [...MAPPING.imports, ["./web_client_bg.js", "__wbg_gone_0000000000000000", "Zz"]] };
  assert.throws(() => renameGlue(GLUE, missing, "a"), /defines the import __wbg_gone_0000000000000000 0 times/);
  const twice = GLUE.replace("__wbindgen_init_externref_table: function", "__wbindgen_init_externref_table: 1, __wbindgen_init_externref_table: function");
  assert.throws(() => renameGlue(twice, MAPPING, "a"), /defines the import __wbindgen_init_externref_table 2 times/);
});

test("an export the glue reaches that the module no longer has refuses", () => {
  const exports = MAPPING.exports.filter(([name]) => name !== "callclient_call");
  assert.throws(() => renameGlue(GLUE, { ...MAPPING, exports }, "a"), /reaches wasm\.callclient_call/);
});

test("imports filed under a module the glue does not name refuse", () => {
  const elsewhere = { ...MAPPING, imports: MAPPING.imports.map(([, name, renamed]) => ["./other.js", name, renamed]) };
  assert.throws(() => renameGlue(GLUE, elsewhere, "a"), /under "\.\/other\.js" 0 times/);
});

test("type declarations take the new export names", () => {
  const declarations = "export interface InitOutput {\n  readonly callclient_call: (a: number) => void;\n}\nexport const __wbindgen_externrefs: WebAssembly.Table;\n";
  const renamed = renameDeclarations(declarations, MAPPING);
  assert.match(renamed, /readonly Kb: \(a: number\) => void;/);
  assert.match(renamed, /export const hc: WebAssembly\.Table;/);
});

/** A module importing `a`.`b` and exporting `c`, written out byte by byte. */
const TINY_MODULE = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // types: () -> ()
  0x02, 0x07, 0x01, 0x01, 0x61, 0x01, 0x62, 0x00, 0x00, // imports: a.b, a function
  0x03, 0x02, 0x01, 0x00, // functions: one of type 0
  0x07, 0x05, 0x01, 0x01, 0x63, 0x00, 0x01, // exports: c = function 1
  0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: an empty body
]);

test("the module is checked against the mapping, and its module name is read from it", () => {
  const mapping = { imports: [["./web_client_bg.js", "__wbg_x", "b"]], exports: [["callclient_x", "c"]] };
  assert.equal(checkModule(TINY_MODULE, mapping), "a");
  assert.throws(() => checkModule(TINY_MODULE, { ...mapping, imports: [["./web_client_bg.js", "__wbg_x", "z"]] }), /imports are not the mapping's/);
  assert.throws(() => checkModule(TINY_MODULE, { ...mapping, exports: [] }), /exports are not the mapping's/);
});

test("a mapping without its lists refuses", () => {
  assert.deepEqual(parseMapping('{"imports": [], "exports": []}'), { imports: [], exports: [] });
  assert.throws(() => parseMapping('{"imports": []}'), /no imports\/exports lists/);
  assert.throws(() => parseMapping("not json"));
});
