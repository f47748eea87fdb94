//! Call statistics page: takes the admin token (memory only), fetches /api/v1/admin/call-stats and draws the figures, the per-day and per-number stacked bars (SVG via createElementNS) and their tables.

const STATS_URL = "/api/v1/admin/call-stats";
const SVG_NS = "http://www.w3.org/2000/svg";

/** Bar segments, left to right, with the fill patterns defined in admin.html and their words. */
const SEGMENTS = [
  { key: "completed", label: "Completed", pattern: "pattern-completed" },
  { key: "busy", label: "Busy", pattern: "pattern-busy" },
  { key: "no-answer", label: "No answer", pattern: "pattern-no-answer" },
  { key: "failed", label: "Failed", pattern: "pattern-failed" },
  { key: "other", label: "Other", pattern: "pattern-other" },
];

/** Outcomes with a segment of their own; every other outcome counts as "other". */
const NAMED_OUTCOMES = new Set(SEGMENTS.map((s) => s.key).filter((k) => k !== "other"));

/** Outcome codes in words, for the "other" segment's breakdown. */
const OUTCOME_WORDS = { canceled: "cancelled", "in-progress": "in progress" };

/** Below this width each bar's label and summary take two lines, so that text never overflows. */
const NARROW = window.matchMedia("(max-width: 30em)");

/** Bar geometry in CSS pixels: text line height, bar height, gap between bars. */
const LINE = 18;
const BAR = 22;
const GAP = 14;

/**
 * The admin token: in this module's memory only (never in storage, URLs or the DOM once
 * accepted). Null until one is entered, and again after "Forget the token" or a refusal.
 */
let adminToken = null;

/** Counts requests: only the latest one may change the page. */
let requests = 0;

/** The statistics shown, to redraw the charts when the layout changes. */
let shown = null;

const $ = (id) => document.getElementById(id);

function setStatus(state, text) {
  const status = $("stats-status");
  status.dataset.state = state;
  status.textContent = text;
}

function count(value) {
  return Number.isFinite(value) && value >= 0 ? Math.round(value) : 0;
}

function percent(rate) {
  return Number.isFinite(rate) ? `${Math.round(rate * 100)}%` : null;
}

/** Seconds as m:ss (or h:mm:ss), and in words for screen readers. */
function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return null;
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n) => String(n).padStart(2, "0");
  const short = h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
  const unit = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const words = [h && unit(h, "hour"), (h || m) && unit(m, "minute"), unit(s, "second")].filter(Boolean).join(" ");
  return { short, words };
}

const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });

function dayLabel(date) {
  if (typeof date !== "string" || !/^\d{4}-\d{2}-\d{2}$/.test(date)) return String(date ?? "Unknown day");
  const parsed = new Date(`${date}T00:00:00Z`);
  return Number.isNaN(parsed.getTime()) ? date : dayFormat.format(parsed);
}

function numberLabel(poolNumber) {
  return !poolNumber || poolNumber === "none" ? "No pool number" : String(poolNumber);
}

/** A row's counts per segment, and the outcomes folded into "other". */
function segmentCounts(summary) {
  const outcomes = summary?.outcomes && typeof summary.outcomes === "object" ? summary.outcomes : {};
  const counts = { completed: 0, busy: 0, "no-answer": 0, failed: 0, other: 0 };
  const others = [];
  for (const [outcome, value] of Object.entries(outcomes)) {
    const n = count(value);
    if (NAMED_OUTCOMES.has(outcome)) counts[outcome] += n;
    else if (n > 0) {
      counts.other += n;
      others.push(`${OUTCOME_WORDS[outcome] ?? outcome} ${n}`);
    }
  }
  return { counts, others };
}

function callsWord(n) {
  return `${n.toLocaleString()} call${n === 1 ? "" : "s"}`;
}

/** "12 calls · 58% answered" for a bar's label. */
function rowSummary(summary) {
  const calls = count(summary.calls);
  const rate = percent(summary.answerRate);
  return rate ? `${callsWord(calls)} · ${rate} answered` : callsWord(calls);
}

function svg(name, attributes = {}, text) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function html(name, attributes = {}, text) {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * One stacked bar chart: a group (`g.bar`) per row with its label, its summary and a segment
 * per outcome, bar lengths relative to the busiest row. Widths are percentages of the chart's
 * width and text keeps its size, so the chart fits any width without shrinking the words.
 */
function drawChart(host, { id, title, rows, labelOf, keyOf }) {
  const narrow = NARROW.matches;
  const textLines = narrow ? 2 : 1;
  const rowHeight = textLines * LINE + 6 + BAR + GAP;
  const height = Math.max(rows.length * rowHeight - GAP + 2, 1);
  const max = Math.max(1, ...rows.map((r) => count(r.calls)));
  const total = rows.reduce((sum, r) => sum + count(r.calls), 0);

  const chart = svg("svg", {
    class: "bars", id, role: "img", width: "100%", height,
    "aria-labelledby": `${id}-title`, "aria-describedby": `${id}-desc`,
  });
  chart.append(
    svg("title", { id: `${id}-title` }, title),
    svg("desc", { id: `${id}-desc` }, `${rows.length} bar${rows.length === 1 ? "" : "s"}, ${callsWord(total)} in all. The same numbers are in the table that follows.`),
  );
  rows.forEach((row, index) => {
    const top = index * rowHeight;
    const group = svg("g", { class: "bar", "data-key": keyOf(row), transform: `translate(0 ${top})` });
    const label = svg("text", { class: "bar-text", x: 0, y: LINE - 4 });
    label.append(svg("tspan", { class: "bar-label" }, labelOf(row)));
    const summary = narrow
      ? svg("tspan", { class: "bar-summary", x: 0, dy: LINE }, rowSummary(row))
      : svg("tspan", { class: "bar-summary" }, ` · ${rowSummary(row)}`);
    label.append(summary);
    group.append(label);

    const barTop = textLines * LINE + 6;
    const { counts, others } = segmentCounts(row);
    // Leave a hair at the right so the busiest bar's outline is not clipped.
    const scale = 99.6 / max;
    let x = 0.2;
    for (const segment of SEGMENTS) {
      const n = counts[segment.key];
      if (!n) continue;
      const width = n * scale;
      const rect = svg("rect", {
        class: `seg seg-${segment.key}`, "data-outcome": segment.key,
        x: `${x.toFixed(3)}%`, y: barTop, width: `${width.toFixed(3)}%`, height: BAR,
        fill: `url(#${segment.pattern})`,
      });
      const detail = segment.key === "other" && others.length ? ` (${others.join(", ")})` : "";
      rect.append(svg("title", {}, `${segment.label}: ${n.toLocaleString()}${detail}`));
      group.append(rect);
      x += width;
    }
    const calls = count(row.calls);
    if (calls) {
      group.append(svg("rect", {
        class: "bar-outline", x: "0.2%", y: barTop, width: `${(calls * scale).toFixed(3)}%`, height: BAR,
        fill: "none", "aria-hidden": "true",
      }));
    }
    chart.append(group);
  });
  host.replaceChildren(chart);
}

/** The table equivalent of a chart: one row per bar, a column per outcome. */
function fillTable(table, { heading, rows, labelOf }) {
  const head = html("tr");
  for (const text of [heading, "Calls", "Answered", "Answer rate", ...SEGMENTS.map((s) => s.label), "Median talk time"]) {
    head.append(html("th", { scope: "col" }, text));
  }
  table.tHead.replaceChildren(head);
  const body = rows.map((row) => {
    const tr = html("tr");
    tr.append(html("th", { scope: "row" }, labelOf(row)));
    const { counts, others } = segmentCounts(row);
    const median = duration(row.medianDurationSeconds);
    const cells = [
      count(row.calls).toLocaleString(),
      count(row.answered).toLocaleString(),
      percent(row.answerRate) ?? "–",
      ...SEGMENTS.map((s) => counts[s.key].toLocaleString() + (s.key === "other" && others.length ? ` (${others.join(", ")})` : "")),
      median ? median.short : "–",
    ];
    for (const text of cells) tr.append(html("td", {}, text));
    return tr;
  });
  table.tBodies[0].replaceChildren(...body);
}

function showFigures(overall) {
  $("figure-calls").textContent = count(overall.calls).toLocaleString();
  $("figure-answered").textContent = count(overall.answered).toLocaleString();
  $("figure-answer-rate").textContent = percent(overall.answerRate) ?? "None yet";
  const median = duration(overall.medianDurationSeconds);
  const target = $("figure-median");
  if (median) {
    target.replaceChildren(
      html("span", { "aria-hidden": "true" }, median.short),
      html("span", { class: "visually-hidden" }, median.words),
    );
  } else {
    target.textContent = "No answered calls";
  }
}

function drawCharts(stats) {
  const perDay = Array.isArray(stats.perDay) ? stats.perDay : [];
  const perNumber = Array.isArray(stats.perNumber) ? stats.perNumber : [];
  const day = { rows: perDay, labelOf: (r) => dayLabel(r.date), keyOf: (r) => r.date ?? "" };
  const number = { rows: perNumber, labelOf: (r) => numberLabel(r.poolNumber), keyOf: (r) => r.poolNumber ?? "none" };
  drawChart($("per-day-chart"), { id: "chart-per-day", title: "Calls per day, split by outcome", ...day });
  drawChart($("per-number-chart"), { id: "chart-per-number", title: "Calls per pool number, split by outcome", ...number });
  fillTable($("per-day-table"), { heading: "Day (UTC)", ...day });
  fillTable($("per-number-table"), { heading: "Pool number", ...number });
}

function show(stats) {
  const overall = stats.overall ?? {};
  const calls = count(overall.calls);
  shown = stats;
  $("stats").hidden = false;
  $("stats-empty").hidden = calls > 0;
  $("figures").hidden = calls === 0;
  $("charts").hidden = calls === 0;
  const time = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  $("stats-updated").textContent = `Updated at ${time}.`;
  if (calls === 0) {
    setStatus("empty", "No calls recorded yet.");
    return;
  }
  showFigures(overall);
  drawCharts(stats);
  const rate = percent(overall.answerRate);
  setStatus("ok", `Statistics loaded: ${callsWord(calls)}${rate ? `, ${rate} answered` : ""}.`);
}

function hideStats() {
  shown = null;
  $("stats").hidden = true;
}

async function problem(response) {
  try {
    const body = await response.json();
    return typeof body?.error?.message === "string" ? body.error.message : null;
  } catch {
    return null;
  }
}

/** Fetches and shows the statistics with `token`. Resolves true when they were shown. */
async function load(token) {
  const request = ++requests;
  setStatus("loading", "Loading the statistics…");
  $("stats").setAttribute("aria-busy", "true");
  let response;
  try {
    response = await fetch(STATS_URL, {
      headers: { authorization: `Bearer ${token}`, accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
  } catch {
    if (request === requests) {
      $("stats").removeAttribute("aria-busy");
      setStatus("error", "The call service cannot be reached.");
    }
    return false;
  }
  if (request !== requests) return false;
  $("stats").removeAttribute("aria-busy");
  if (response.status === 401 || response.status === 403) {
    adminToken = null;
    hideStats();
    setStatus("error", "That admin token was not accepted.");
    return false;
  }
  if (!response.ok) {
    const message = await problem(response);
    if (request !== requests) return false;
    if (response.status === 503) setStatus("error", message ?? "The statistics are not available right now. Try again in a minute.");
    else setStatus("error", `The statistics could not be loaded: ${message ?? `HTTP ${response.status}`}.`);
    return false;
  }
  let stats;
  try {
    stats = await response.json();
  } catch {
    stats = null;
  }
  if (request !== requests) return false;
  if (!stats || typeof stats !== "object" || typeof stats.overall !== "object" || stats.overall === null) {
    setStatus("error", "The statistics could not be loaded: the call service sent an answer this page does not understand.");
    return false;
  }
  adminToken = token;
  show(stats);
  return true;
}

/** Marks the token field wrong (or right again); when wrong, the status that says why describes it. */
function markToken(input, invalid) {
  if (invalid) {
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", "token-hint stats-status");
  } else {
    input.removeAttribute("aria-invalid");
    input.setAttribute("aria-describedby", "token-hint");
  }
}

async function submitToken(event) {
  event.preventDefault();
  const input = $("admin-token");
  const typed = input.value.trim();
  const token = typed || adminToken;
  if (!token) {
    markToken(input, true);
    setStatus("error", "Enter the admin token first.");
    input.focus();
    return;
  }
  markToken(input, false);
  if (await load(token)) {
    // Accepted: the token now lives only in `adminToken`.
    input.value = "";
    $("overview-title").focus();
  } else if (typed) {
    markToken(input, true);
    input.focus();
    input.select();
  }
}

function forget() {
  adminToken = null;
  requests += 1;
  hideStats();
  setStatus("idle", "The token is forgotten. Enter the admin token to see the statistics again.");
  $("admin-token").focus();
}

function toggleTable(event) {
  const button = event.target.closest(".table-toggle");
  if (!button) return;
  const section = button.closest(".chart-section");
  const showing = button.getAttribute("aria-pressed") !== "true";
  button.setAttribute("aria-pressed", String(showing));
  section.dataset.table = showing ? "shown" : "hidden";
  // The scrollable table is a tab stop only while it can be seen.
  const wrap = section.querySelector(".table-wrap");
  if (showing) wrap.setAttribute("tabindex", "0");
  else wrap.removeAttribute("tabindex");
}

$("token-form").addEventListener("submit", submitToken);
$("admin-token").addEventListener("input", (event) => markToken(event.target, false));
$("refresh").addEventListener("click", async () => {
  if (!adminToken) return forget();
  // A refused token hides the statistics, and this button with them: focus goes back to the input.
  if (!(await load(adminToken)) && $("stats").hidden) $("admin-token").focus();
});
$("forget").addEventListener("click", forget);
$("charts").addEventListener("click", toggleTable);
NARROW.addEventListener("change", () => {
  if (shown && !$("charts").hidden) drawCharts(shown);
});
