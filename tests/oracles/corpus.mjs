//! What every oracle generator here ends with: writes its corpus file, or with `--check`
//! regenerates it in memory and fails if the committed file differs.
import { readFileSync, writeFileSync } from "node:fs";

/** Writes (or with `--check`, compares) `{generator: "npm twilio <version>", cases}` at `out`. */
export function writeOrCheck(out, cases, { what, agreement }) {
  const version = JSON.parse(readFileSync(new URL("../../node_modules/twilio/package.json", import.meta.url))).version;
  const text = JSON.stringify({ generator: `npm twilio ${version}`, cases }, null, 1) + "\n";
  if (process.argv.includes("--check")) {
    if (readFileSync(out, "utf8") !== text) {
      console.error(`${out.pathname.split("/").slice(-3).join("/")} differs from what npm twilio ${agreement} now`);
      process.exit(1);
    }
    console.log(`${what} oracle: ${cases.length} match npm twilio`);
  } else {
    writeFileSync(out, text);
    console.log(`wrote ${cases.length} ${what} cases`);
  }
}
