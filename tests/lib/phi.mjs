//! Patient-data needles from sim/medplum's fixtures (every phone number in every common format, every patient name) and a pure scanner for text.
//
// Phone numbers are matched as digit sequences, not as strings: the text is cut into groups of
// digits that may be joined by at most two separators (space, dash, dot, slash, brackets), and any
// run of whole consecutive groups whose digits equal a needle is a hit. So "+44 7700 900123",
// "07700-900-123", "(0)7700 900123" and "447700900123" all match, while a number inside a longer
// digit run (a millisecond timestamp) does not. Needles are at least 9 digits long. Hex tokens of
// 32 characters or more (Twilio SIDs such as CA + 32 hex, Durable Object ids, hashes) and UUIDs are
// blanked first, so digits inside them never match. Pool caller IDs are not patient data and are
// not needles. Names: each full name (case-insensitive, any whitespace) and each family name of at
// least 5 letters alone (case-sensitive, as a whole word).
import { patients as FIXTURE_PATIENTS } from "../../sim/medplum/fixtures.mjs";

/** The shortest digit needle: shorter ones would match counters, ports and timestamps. */
export const MIN_DIGITS = 9;
/** Country calling codes the fixtures use (longest first). */
const COUNTRY_CODES = ["44", "1"];

/**
 * The digit forms of one phone number as stored: as stored (digits only), E.164 digits, `00` +
 * E.164, national (`0` + significant number), the significant number, and its last 9 and 10 digits.
 * Only the forms of at least MIN_DIGITS digits.
 */
export function phoneDigitForms(raw) {
  const stored = raw.replace(/\D/g, "");
  let e164;
  const trimmed = raw.trim();
  if (trimmed.startsWith("+")) e164 = trimmed.replace(/\(0\)/g, "").replace(/\D/g, "");
  else if (stored.startsWith("00")) e164 = stored.slice(2);
  else if (stored.startsWith("0")) e164 = `44${stored.slice(1)}`;
  else e164 = stored;
  const cc = COUNTRY_CODES.find((c) => e164.startsWith(c)) ?? "";
  const significant = e164.slice(cc.length);
  const forms = [
    stored,
    e164,
    `00${e164}`,
    `0${significant}`,
    cc === "1" ? `1${significant}` : null,
    significant,
    significant.slice(-10),
    significant.slice(-9),
  ];
  return [...new Set(forms.filter((f) => f && f.length >= MIN_DIGITS))];
}

/**
 * Needles from the fixtures' patients: `{phones: Map<digits, label>, names: [{label, regex}]}`.
 * A label names the patient and what matched (the fake number as stored, or the name).
 */
export function buildNeedles(patients = FIXTURE_PATIENTS) {
  const phones = new Map();
  const names = [];
  for (const patient of Object.values(patients)) {
    for (const telecom of patient.telecom ?? []) {
      if (telecom.system !== "phone" && telecom.system !== "sms") continue;
      for (const digits of phoneDigitForms(telecom.value)) {
        const label = `${patient.id} phone "${telecom.value}"`;
        const existing = phones.get(digits);
        phones.set(digits, existing && existing !== label ? `${existing}; ${label}` : label);
      }
    }
    const words = patient.name.trim().split(/\s+/);
    const family = words.at(-1);
    names.push({
      label: `${patient.id} name "${patient.name}"`,
      regex: new RegExp(`(?<![A-Za-z])${words.map(escapeRegex).join("\\s+")}(?![A-Za-z])`, "gi"),
    });
    if (words.length > 1 && /^[A-Za-z]{5,}$/.test(family)) {
      names.push({ label: `${patient.id} family name "${family}"`, regex: new RegExp(`(?<![A-Za-z])${escapeRegex(family)}(?![A-Za-z])`, "g") });
    }
  }
  return { phones, names };
}

function escapeRegex(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Same-length blanking, so columns stay right. */
const blank = (match) => "~".repeat(match.length);
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const HEX_TOKEN = /[0-9a-f]{32,}/gi;
/** Digit groups joined by at most two separators. */
const DIGIT_SEQUENCE = /\d+(?:[\s\-./()\u2010-\u2015]{1,2}\d+)*/g;
const MAX_NEEDLE_DIGITS = 16;

/** Hits in one line: `[{column (1-based), kind: "phone"|"name", needle: label, match}]`. */
export function scanLine(line, needles = DEFAULT_NEEDLES) {
  const hits = [];
  const masked = line.replace(ANSI, blank).replace(UUID, blank).replace(HEX_TOKEN, blank);
  for (const sequence of masked.matchAll(DIGIT_SEQUENCE)) {
    const groups = [...sequence[0].matchAll(/\d+/g)].map((g) => ({ start: sequence.index + g.index, digits: g[0] }));
    let coveredUntil = -1;
    for (let i = 0; i < groups.length; i++) {
      if (groups[i].start < coveredUntil) continue;
      let best = null;
      let digits = "";
      for (let j = i; j < groups.length; j++) {
        digits += groups[j].digits;
        if (digits.length > MAX_NEEDLE_DIGITS) break;
        const label = needles.phones.get(digits);
        if (label) best = { end: groups[j].start + groups[j].digits.length, label };
      }
      if (best) {
        const start = groups[i].start > 0 && masked[groups[i].start - 1] === "+" ? groups[i].start - 1 : groups[i].start;
        hits.push({ column: start + 1, kind: "phone", needle: best.label, match: line.slice(start, best.end) });
        coveredUntil = best.end;
      }
    }
  }
  // Longest name matches first, so a family name inside a full name is one hit, not two.
  const nameHits = needles.names
    .flatMap(({ label, regex }) => [...masked.matchAll(regex)].map((m) => ({ start: m.index, end: m.index + m[0].length, label })))
    .sort((a, b) => b.end - b.start - (a.end - a.start));
  const taken = [];
  for (const hit of nameHits) {
    if (taken.some((t) => hit.start >= t.start && hit.end <= t.end)) continue;
    taken.push(hit);
    hits.push({ column: hit.start + 1, kind: "name", needle: hit.label, match: line.slice(hit.start, hit.end) });
  }
  return hits.sort((a, b) => a.column - b.column);
}

/** Hits in a text: `[{line (1-based), column, kind, needle, match}]`. */
export function scan(text, needles = DEFAULT_NEEDLES) {
  const hits = [];
  text.split(/\r?\n/).forEach((line, index) => {
    for (const hit of scanLine(line, needles)) hits.push({ line: index + 1, ...hit });
  });
  return hits;
}

export const DEFAULT_NEEDLES = buildNeedles();
