//! Tests for the benchmark charts' SVG writer: one bar per value, labels escaped, log scale sane.
import { test } from "node:test";
import assert from "node:assert/strict";
import { barChart, short } from "./svg.mjs";

test("a chart has one rect per bar, escaped labels and a title", () => {
  const svg = barChart({
    title: "ops <per> second", unit: "ops/s", log: true,
    rows: [{ label: "mint & sign", bars: [{ name: "ours", value: 500_000 }, { name: "node", value: 24_000 }] }],
  });
  assert.match(svg, /^<\?xml version="1.0"/);
  assert.equal((svg.match(/<rect x=/g) ?? []).length, 2);
  assert.match(svg, /ops &lt;per&gt; second/);
  assert.match(svg, /mint &amp; sign/);
  assert.doesNotMatch(svg, /NaN|Infinity/);
  const widths = [...svg.matchAll(/<rect x="\d+" y="\d+" width="([\d.]+)"/g)].map((m) => Number(m[1]));
  assert.ok(widths[0] > widths[1] && widths[1] > 0, `${widths}`);
});

test("short() keeps three significant digits", () => {
  assert.equal(short(1_234_567), "1.23 M");
  assert.equal(short(23_456), "23.5 k");
  assert.equal(short(512), "512");
});
