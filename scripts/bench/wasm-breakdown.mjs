//! Where a wasm module's bytes go: function bodies summed by the Rust crate their symbol names,
//! read from the module's `name` section (rustc's output, before wasm-bindgen and wasm-opt).

/** Reads an unsigned LEB128 at `offset`; returns [value, next offset]. */
function leb(bytes, offset) {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (offset >= bytes.length) throw new Error("wasm: truncated LEB128");
    const byte = bytes[offset++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) return [value, offset];
  }
}

/** Reads a name (a LEB128 length, then UTF-8); returns [text, next offset]. */
function readName(bytes, offset) {
  const [length, at] = leb(bytes, offset);
  return [bytes.toString("utf8", at, at + length), at + length];
}

/**
 * Reads a vector (a LEB128 count, then the entries) at `offset`: `entry(at, index)` reads one
 * entry and returns the offset after it. Returns the offset after the vector.
 */
function eachEntry(bytes, offset, entry) {
  let [count, at] = leb(bytes, offset);
  for (let index = 0; index < count; index++) at = entry(at, index);
  return at;
}

/** Skips a limits field (memory and table imports). */
function skipLimits(bytes, offset) {
  const flags = bytes[offset++];
  [, offset] = leb(bytes, offset);
  if (flags & 1) [, offset] = leb(bytes, offset);
  return offset;
}

/**
 * The crate a symbol belongs to: the first path segment of a legacy (`_ZN…`) or v0 (`_R…`)
 * mangled name; for an impl of a foreign trait (`_ZN…_$LT$serde_json..Value$u20$as…`), the
 * crate of the type. Names that are not mangled Rust (wasm-bindgen's shims, the exports, libc)
 * go under "(not Rust-mangled)".
 */
export function crateOf(symbol) {
  const legacy = /^_ZN(\d+)/.exec(symbol);
  if (legacy) {
    const start = legacy[0].length;
    const first = symbol.slice(start, start + Number(legacy[1]));
    if (!first.startsWith("_$LT$")) return first;
    const typed = /\$LT\$(?:\$RF\$)?(?:mut\$u20\$)?([a-z_][a-z0-9_]*)\.\./.exec(first);
    return typed ? typed[1] : "(generic impls)";
  }
  if (symbol.startsWith("_R")) {
    const v0 = /C(?:s[0-9A-Za-z]*_)?(\d+)([A-Za-z_][A-Za-z0-9_]*)/.exec(symbol);
    if (v0) return v0[2].slice(0, Number(v0[1]));
  }
  return "(not Rust-mangled)";
}

/** Functions that exist only for wasm-bindgen's type description. */
const DESCRIPTOR = /^__wbindgen_describe|wasm_bindgen\.\.describe\.\.WasmDescribe/;

/**
 * `{ codeBytes, dataBytes, crates: [[crate, bytes], …] }` (largest first; `codeBytes` is their
 * sum, `dataBytes` the data section's size) for a module with a
 * `name` section. The type descriptors (`__wbindgen_describe*` and the `WasmDescribe` impls they
 * call) are left out: wasm-bindgen runs them to learn the types, then removes them.
 */
export function wasmBreakdown(bytes) {
  if (bytes.length < 8 || bytes.readUInt32LE(0) !== 0x6d736100) throw new Error("not a wasm module");
  const names = new Map();
  const bodies = [];
  let importedFunctions = 0;
  let dataBytes = 0;
  let codeBytes = 0;
  for (let offset = 8; offset < bytes.length; ) {
    const id = bytes[offset++];
    let size;
    [size, offset] = leb(bytes, offset);
    const end = offset + size;
    if (id === 2) {
      eachEntry(bytes, offset, (at) => {
        [, at] = readName(bytes, at); // module
        [, at] = readName(bytes, at); // field
        const kind = bytes[at++];
        if (kind === 0) { // a function: its type index
          importedFunctions++;
          return leb(bytes, at)[1];
        }
        if (kind === 1) return skipLimits(bytes, at + 1); // a table: element type, limits
        if (kind === 2) return skipLimits(bytes, at); // a memory
        if (kind === 3) return at + 2; // a global: value type, mutability
        return leb(bytes, at)[1]; // a tag
      });
    } else if (id === 10) {
      eachEntry(bytes, offset, (at, index) => {
        const [length, body] = leb(bytes, at);
        bodies.push([importedFunctions + index, length]);
        return body + length;
      });
    } else if (id === 11) {
      dataBytes = size;
    } else if (id === 0) {
      const [section, contents] = readName(bytes, offset);
      let at = contents;
      while (section === "name" && at < end) {
        const subsection = bytes[at++];
        let subsectionSize;
        [subsectionSize, at] = leb(bytes, at);
        const subsectionEnd = at + subsectionSize;
        if (subsection === 1) {
          eachEntry(bytes, at, (entry) => {
            const [index, nameAt] = leb(bytes, entry);
            const [name, next] = readName(bytes, nameAt);
            names.set(index, name);
            return next;
          });
        }
        at = subsectionEnd;
      }
    }
    offset = end;
  }
  if (names.size === 0) throw new Error("the module has no function names (a name section)");
  const byCrate = new Map();
  for (const [index, length] of bodies) {
    const symbol = names.get(index) ?? "";
    if (DESCRIPTOR.test(symbol)) continue;
    const crate = crateOf(symbol);
    byCrate.set(crate, (byCrate.get(crate) ?? 0) + length);
    codeBytes += length;
  }
  const crates = [...byCrate].sort((a, b) => b[1] - a[1]);
  return { codeBytes, dataBytes, crates };
}
