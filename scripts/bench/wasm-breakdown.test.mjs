//! Tests for the wasm size breakdown: symbols to crates, and a hand-assembled module's sums.
import { test } from "node:test";
import assert from "node:assert/strict";
import { crateOf, wasmBreakdown } from "./wasm-breakdown.mjs";

test("legacy, v0 and foreign-impl symbols name their crate", () => {
  assert.equal(crateOf("_ZN6shared12call_session7Session6handle17hd6a302bcb6667cb0E"), "shared");
  assert.equal(crateOf("_ZN10web_client4glue5panel5Panel5mount17hcde5944169930e42E"), "web_client");
  assert.equal(
    crateOf("_ZN98_$LT$$RF$mut$u20$serde_json..de..Deserializer$LT$R$GT$$u20$as$u20$serde_core..de..Deserializer$GT$18deserialize_struct17hdb1b75dc669b842eE"),
    "serde_json",
  );
  assert.equal(crateOf("_RNvNtNtNtNtCsgXGp5Oqx2Ny_4core3num7flt2dec8strategy6dragon15format_shortest"), "core");
  assert.equal(crateOf("_RNvMs0_NtCsjqx8TIyZbP9_8dlmalloc8dlmallocINtB5_8DlmallocNtNtB7_3sys6SystemE6mallocCsebHcaeoSrxy_3std"), "dlmalloc");
  assert.equal(crateOf("callclient_mount"), "(not Rust-mangled)");
});

/** A module section: id, LEB128 size (one byte: every section here is under 128 bytes), contents. */
const section = (id, contents) => {
  assert.ok(contents.length < 128);
  return [id, contents.length, ...contents];
};
const name = (text) => [text.length, ...Buffer.from(text)];

test("a module's function bodies are summed by crate; describe shims and imports are skipped", () => {
  const body = (length) => [length, ...new Array(length).fill(0x01)];
  const importSection = section(2, [1, ...name("env"), ...name("f"), 0, 0]);
  const codeSection = section(10, [3, ...body(10), ...body(20), ...body(5)]);
  const dataSection = section(11, [0, 0, 0]);
  const symbols = [
    [1, "_ZN6shared1aE"],
    [2, "_ZN6shared1bE"],
    [3, "_ZN5_$LT$wasm_bindgen..describe..WasmDescribe$GT$8describeE"],
  ];
  const nameMap = [symbols.length, ...symbols.flatMap(([index, text]) => [index, ...name(text)])];
  const nameSection = section(0, [...name("name"), 1, nameMap.length, ...nameMap]);
  const module = Buffer.from([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...importSection, ...codeSection, ...dataSection, ...nameSection]);
  const breakdown = wasmBreakdown(module);
  assert.deepEqual(breakdown.crates, [["shared", 30]]);
  assert.equal(breakdown.codeBytes, 30);
  assert.equal(breakdown.dataBytes, 3);
});

test("a module without names, or not a module, is an error", () => {
  assert.throws(() => wasmBreakdown(Buffer.from([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0])), /no function names/);
  assert.throws(() => wasmBreakdown(Buffer.from("not wasm at all")), /not a wasm module/);
});
