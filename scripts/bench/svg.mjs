//! A small SVG writer for scripts/bench.mjs: horizontal bar charts, one group of bars per row
//! label, values printed at the bar ends, optional log scale. No dependencies; plain SVG 1.1.

const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
export const COLORS = { ours: "#1b7f5f", node: "#c2572b", python: "#3d6fb6", sdk: "#c2572b", other: "#8a8a8a" };

/** Shortens a number for a label: 1234567 → "1.23 M". */
export function short(value, digits = 3) {
  const abs = Math.abs(value);
  const [div, suffix] = abs >= 1e9 ? [1e9, " G"] : abs >= 1e6 ? [1e6, " M"] : abs >= 1e4 ? [1e3, " k"] : [1, ""];
  const n = value / div;
  return `${Number(n.toPrecision(digits)).toLocaleString("en-GB")}${suffix}`;
}

/**
 * `rows`: [{label, bars: [{name, value, color, text?}]}]. Bars in a row share its label; `text`
 * overrides the printed value. `log`: log10 axis (for figures an order of magnitude apart).
 */
export function barChart({ title, subtitle = "", unit = "", rows, log = false, width = 760 }) {
  const labelW = 230;
  const valueW = 270;
  const barH = 18;
  const gap = 4;
  const rowGap = 14;
  const top = subtitle ? 58 : 42;
  const plotW = width - labelW - valueW - 20;
  const values = rows.flatMap((r) => r.bars.map((b) => b.value)).filter((v) => Number.isFinite(v) && v > 0);
  const max = Math.max(...values, 1e-9);
  const min = Math.min(...values, max);
  const logMin = Math.floor(Math.log10(min)) - (Math.log10(min) % 1 === 0 ? 1 : 0);
  const scale = (v) => {
    if (!Number.isFinite(v) || v <= 0) return 0;
    if (!log) return (v / max) * plotW;
    return ((Math.log10(v) - logMin) / (Math.log10(max) - logMin)) * plotW;
  };
  const parts = [];
  let y = top;
  for (const row of rows) {
    const rowH = row.bars.length * (barH + gap) - gap;
    parts.push(`<text x="${labelW - 10}" y="${y + rowH / 2 + 5}" text-anchor="end" class="label">${esc(row.label)}</text>`);
    for (const bar of row.bars) {
      const w = Math.max(1, scale(bar.value));
      const text = bar.text ?? `${short(bar.value)}${unit ? ` ${unit}` : ""}`;
      parts.push(`<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${bar.color ?? COLORS.other}"><title>${esc(`${bar.name}: ${text}`)}</title></rect>`);
      parts.push(`<text x="${(labelW + w + 6).toFixed(1)}" y="${y + barH - 5}" class="value">${esc(bar.name)} · ${esc(text)}</text>`);
      y += barH + gap;
    }
    y += rowGap - gap;
  }
  const height = y + 24;
  const axisNote = log ? "log scale" : "linear scale";
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by scripts/bench.mjs (scripts/bench/svg.mjs); regenerate with \`node scripts/bench.mjs\`. -->
<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif">
<style>.title{font-size:16px;font-weight:600;fill:#222}.sub{font-size:12px;fill:#555}.label{font-size:13px;fill:#222}.value{font-size:12px;fill:#333}.axis{font-size:11px;fill:#777}</style>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="12" y="24" class="title">${esc(title)}</text>
${subtitle ? `<text x="12" y="44" class="sub">${esc(subtitle)}</text>` : ""}
<line x1="${labelW}" y1="${top - 6}" x2="${labelW}" y2="${y - rowGap + gap + 4}" stroke="#999"/>
${parts.join("\n")}
<text x="${width - 12}" y="${height - 8}" text-anchor="end" class="axis">${axisNote}</text>
</svg>
`;
}
