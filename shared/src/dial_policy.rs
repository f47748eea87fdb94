//! Which numbers the product may dial: parsing the formats found in patient records into E.164,
//! and the destination rules (UK-only by default or an allowlist of countries; premium-rate and
//! special ranges always blocked), kept as compact data rather than a phone-number library.

use serde::Serialize;
use thiserror::Error;

use crate::ids::E164;

/// Why a raw string is not a dialable number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberError {
    #[error("no phone number")]
    Empty,
    #[error("the phone number contains characters that are not digits")]
    NotANumber,
    #[error("the phone number has too few digits")]
    TooShort,
    #[error("the phone number has too many digits")]
    TooLong,
}

/// A country the policy knows, by ISO 3166 code and calling code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Country {
    pub iso: &'static str,
    pub calling_code: &'static str,
    /// Digits of the national significant number (min, max).
    pub national_digits: (usize, usize),
}

/// Calling codes known to the policy. Longer codes are listed before their prefixes' owners
/// would be matched (lookup takes the longest matching code).
pub const COUNTRIES: &[Country] = &[
    Country {
        iso: "GB",
        calling_code: "44",
        national_digits: (9, 10),
    },
    Country {
        iso: "IE",
        calling_code: "353",
        national_digits: (7, 10),
    },
    Country {
        iso: "FR",
        calling_code: "33",
        national_digits: (9, 9),
    },
    Country {
        iso: "DE",
        calling_code: "49",
        national_digits: (6, 13),
    },
    Country {
        iso: "ES",
        calling_code: "34",
        national_digits: (9, 9),
    },
    Country {
        iso: "NL",
        calling_code: "31",
        national_digits: (9, 9),
    },
    // North America shares calling code 1: [`country_of`] tells the US and Canada apart by area
    // code, and gives no country for the other NANP members (the Caribbean, Bermuda), which are
    // billed as international and are a known target of call-charge fraud.
    Country {
        iso: "US",
        calling_code: "1",
        national_digits: (10, 10),
    },
    Country {
        iso: "CA",
        calling_code: "1",
        national_digits: (10, 10),
    },
];

/// Canada's area codes (geographic and non-geographic), as assigned by the NANPA.
const CANADA_AREA_CODES: &[&str] = &[
    "204", "226", "236", "249", "250", "257", "263", "289", "306", "343", "354", "365", "367",
    "368", "382", "387", "403", "416", "418", "428", "431", "437", "438", "450", "460", "468",
    "474", "506", "514", "519", "548", "579", "581", "584", "587", "600", "604", "613", "622",
    "639", "647", "672", "683", "705", "709", "742", "753", "778", "780", "782", "807", "819",
    "825", "867", "873", "879", "902", "905", "942",
];

/// Area codes of the NANP members that are neither the US (with its territories) nor Canada:
/// the Bahamas, Barbados, Anguilla, Antigua, the British Virgin Islands, the Cayman Islands,
/// Bermuda, Grenada, the Turks and Caicos, Jamaica, Montserrat, Sint Maarten, Saint Lucia,
/// Dominica, Saint Vincent, the Dominican Republic, Trinidad and Tobago, Saint Kitts and Nevis.
const OTHER_NANP_AREA_CODES: &[&str] = &[
    "242", "246", "264", "268", "284", "345", "441", "473", "649", "658", "664", "721", "758",
    "767", "784", "809", "829", "849", "868", "869", "876",
];

/// A range that is never dialled, whatever the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockedRange {
    /// E.164 digits the range starts with (no `+`).
    pub prefix: &'static str,
    pub kind: BlockedKind,
    /// Only numbers with at least this many E.164 digits (0: any). Tells ranges apart that share
    /// a prefix with shorter geographic numbers (Irish 15xx premium vs Dublin 01 5xx).
    pub min_digits: usize,
}

const fn blocked(prefix: &'static str, kind: BlockedKind) -> BlockedRange {
    blocked_long(prefix, kind, 0)
}

const fn blocked_long(prefix: &'static str, kind: BlockedKind, min_digits: usize) -> BlockedRange {
    BlockedRange {
        prefix,
        kind,
        min_digits,
    }
}

/// Why a range is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockedKind {
    PremiumRate,
    SpecialService,
    PersonalNumber,
    Pager,
}

/// Ranges that are expensive or abused. Exceptions (e.g. Isle of Man mobiles `+447624` inside
/// the blocked `+4476` pager range) are in [`ALLOWED_INSIDE_BLOCKED`].
pub const BLOCKED_RANGES: &[BlockedRange] = &[
    blocked("449", BlockedKind::PremiumRate),
    blocked("4487", BlockedKind::SpecialService),
    blocked("4470", BlockedKind::PersonalNumber),
    blocked("4476", BlockedKind::Pager),
    // Ireland: the whole 15xx range is premium rate (1512 to 1599: 10 national digits; Dublin
    // 01 5xx numbers have 8).
    blocked_long("35315", BlockedKind::PremiumRate, 13),
    // France: 08 9x premium rate.
    blocked("3389", BlockedKind::PremiumRate),
    // Germany: 0900 premium rate, 0137 mass-calling.
    blocked("49900", BlockedKind::PremiumRate),
    blocked("49137", BlockedKind::SpecialService),
    // Spain: 803/806/807 premium rate, 905 mass calling, 901/902 shared cost (800 and 900 are
    // freephone, and stay allowed).
    blocked("34803", BlockedKind::PremiumRate),
    blocked("34806", BlockedKind::PremiumRate),
    blocked("34807", BlockedKind::PremiumRate),
    blocked("34905", BlockedKind::SpecialService),
    blocked("34901", BlockedKind::SpecialService),
    blocked("34902", BlockedKind::SpecialService),
    // Netherlands: 0900/0906/0909 premium rate.
    blocked("31900", BlockedKind::PremiumRate),
    blocked("31906", BlockedKind::PremiumRate),
    blocked("31909", BlockedKind::PremiumRate),
    // North America: the 900 area code is premium rate (and the 976 exchange inside every
    // area code, which [`blocked_range`] checks: it is not a prefix).
    blocked("1900", BlockedKind::PremiumRate),
];

/// Prefixes that stay allowed although a blocked range contains them.
pub const ALLOWED_INSIDE_BLOCKED: &[&str] = &["447624"];

/// Which destinations may be dialled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DestinationPolicy {
    /// United Kingdom numbers only (the default).
    #[default]
    UkOnly,
    /// These ISO country codes (a subset of [`COUNTRIES`]).
    Countries(Vec<&'static str>),
}

/// Why the policy configuration string is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the dialing policy is 'uk-only' or 'countries:' followed by ISO codes from {known}, e.g. 'countries:GB,IE'")]
pub struct PolicyConfigError {
    pub known: String,
}

impl DestinationPolicy {
    /// Parses `uk-only` or `countries:GB,IE`.
    pub fn parse(value: &str) -> Result<Self, PolicyConfigError> {
        let error = || PolicyConfigError {
            known: COUNTRIES
                .iter()
                .map(|c| c.iso)
                .collect::<Vec<_>>()
                .join(","),
        };
        let value = value.trim();
        if value.eq_ignore_ascii_case("uk-only") {
            return Ok(Self::UkOnly);
        }
        let list = value.strip_prefix("countries:").ok_or_else(error)?;
        let mut isos = Vec::new();
        for code in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let country = COUNTRIES
                .iter()
                .find(|c| c.iso.eq_ignore_ascii_case(code))
                .ok_or_else(error)?;
            if !isos.contains(&country.iso) {
                isos.push(country.iso);
            }
        }
        if isos.is_empty() {
            return Err(error());
        }
        Ok(Self::Countries(isos))
    }

    fn allows(&self, country: &Country) -> bool {
        match self {
            Self::UkOnly => country.iso == "GB",
            Self::Countries(isos) => isos.contains(&country.iso),
        }
    }
}

/// Why the policy refuses to dial a number. The code is machine-readable; the message is for
/// the clinician (and never contains the number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error, Serialize)]
#[serde(rename_all = "snake_case", tag = "code")]
pub enum Refusal {
    #[error("the patient's phone number is not usable: {0}")]
    InvalidNumber(NumberError),
    #[error("calls to this country are not enabled")]
    CountryNotAllowed,
    #[error("the number is in a premium-rate or special range, which is never dialled")]
    BlockedRange(BlockedKind),
}

impl Refusal {
    /// A stable code for the panel and telemetry.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::InvalidNumber(NumberError::Empty) => "number_missing",
            Refusal::InvalidNumber(_) => "number_invalid",
            Refusal::CountryNotAllowed => "country_not_allowed",
            Refusal::BlockedRange(_) => "number_blocked",
        }
    }
}

/// Limits against misuse: calls placed per clinician and per patient in a rolling hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    pub per_clinician_per_hour: u32,
    pub per_patient_per_hour: u32,
}

impl Default for CallLimits {
    /// A clinic day rarely needs more than one call every two minutes per clinician, and no
    /// patient should be rung more than a handful of times an hour.
    fn default() -> Self {
        Self {
            per_clinician_per_hour: 30,
            per_patient_per_hour: 6,
        }
    }
}

/// Which limit a call would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitExceeded {
    #[error("this clinician has placed too many calls in the last hour")]
    Clinician,
    #[error("this patient has been called too many times in the last hour")]
    Patient,
}

/// The rolling window the limits count over.
pub const LIMIT_WINDOW_MS: i64 = 60 * 60 * 1000;

/// Checks the counts of calls already placed in the last hour against the limits.
pub fn check_limits(
    limits: CallLimits,
    clinician_calls_last_hour: u32,
    patient_calls_last_hour: u32,
) -> Result<(), LimitExceeded> {
    if clinician_calls_last_hour >= limits.per_clinician_per_hour {
        Err(LimitExceeded::Clinician)
    } else if patient_calls_last_hour >= limits.per_patient_per_hour {
        Err(LimitExceeded::Patient)
    } else {
        Ok(())
    }
}

/// The country a number belongs to (longest calling code first; in North America, by area
/// code: the US, Canada, or no country for the other NANP members).
pub fn country_of(number: &E164) -> Option<&'static Country> {
    let digits = number.digits();
    let iso = match digits.strip_prefix('1') {
        Some(national) => {
            let area = national.get(..3)?;
            if CANADA_AREA_CODES.contains(&area) {
                "CA"
            } else if OTHER_NANP_AREA_CODES.contains(&area) {
                return None;
            } else {
                "US"
            }
        }
        None => {
            return COUNTRIES
                .iter()
                .filter(|c| digits.starts_with(c.calling_code))
                .max_by_key(|c| c.calling_code.len())
        }
    };
    COUNTRIES.iter().find(|c| c.iso == iso)
}

/// Normalises a number as written in a patient record into E.164. National numbers (starting
/// with a single `0`) are read as UK numbers. Accepts spaces, dashes, dots, brackets, a `(0)`
/// trunk prefix after the country code, and a `00` international prefix.
pub fn normalise(raw: &str) -> Result<E164, NumberError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(NumberError::Empty);
    }
    let international = trimmed.starts_with('+') || trimmed.starts_with("00");
    // `+44 (0)20 …`: the bracketed trunk zero is not dialled internationally.
    let without_trunk = if international {
        trimmed.replacen("(0)", "", 1)
    } else {
        trimmed.to_owned()
    };
    let digits = written_digits(&without_trunk).ok_or(NumberError::NotANumber)?;
    let e164_digits = if let Some(rest) = trimmed.strip_prefix('+').map(|_| digits.as_str()) {
        without_written_trunk_zero(rest)
    } else if let Some(rest) = digits.strip_prefix("00") {
        without_written_trunk_zero(rest)
    } else if let Some(national) = digits.strip_prefix('0') {
        format!("44{national}")
    } else {
        return Err(NumberError::NotANumber);
    };
    if e164_digits.len() < 8 {
        return Err(NumberError::TooShort);
    }
    if e164_digits.len() > 15 {
        return Err(NumberError::TooLong);
    }
    let number = E164::parse(&format!("+{e164_digits}")).map_err(|_| NumberError::NotANumber)?;
    if let Some(country) = country_of(&number) {
        let national = number.digits().len() - country.calling_code.len();
        if national < country.national_digits.0 {
            return Err(NumberError::TooShort);
        }
        if national > country.national_digits.1 {
            return Err(NumberError::TooLong);
        }
    }
    Ok(number)
}

/// International digits with the national trunk zero some records keep after the country code
/// ("+44 07700 900123"): the UK and Ireland have no number starting with 0 after it, so the
/// zero is dropped there. (Elsewhere a 0 can belong to the number: Italy's do.) Only a single
/// zero: "+44 00…" is not a trunk zero, and is left as written (so normalising twice changes
/// nothing).
fn without_written_trunk_zero(digits: &str) -> String {
    for code in ["44", "353"] {
        if let Some(national) = digits
            .strip_prefix(code)
            .and_then(|rest| rest.strip_prefix('0'))
            .filter(|national| !national.starts_with('0'))
        {
            return format!("{code}{national}");
        }
    }
    digits.to_owned()
}

/// The separators patient records write numbers with: spaces, dashes, dots, brackets.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}')
}

/// The digits of a number written with the separators patient records use (and a leading `+`,
/// which is left off); `None` if anything else is in it.
fn written_digits(text: &str) -> Option<String> {
    let mut digits = String::with_capacity(text.len());
    for (index, c) in text.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if index == 0 => {}
            c if is_separator(c) => {}
            _ => return None,
        }
    }
    Some(digits)
}

/// What a `tel:` link dials for a number as recorded that [`normalise`] could not read (a local
/// number without its area code, an unusual length): its digits, with a leading `+` kept, when
/// the text is only a number written with the usual separators. An extension written after it
/// ("020 7946 0123 ext 4", "x4", "#4") is left off the link and stays in the text shown. `None`
/// for anything else ("07700 9OO123"), so a link never dials digits other than those shown.
/// (One pass over the characters, with no substring search and no slicing that could panic:
/// the browser module carries this, and either costs it kilobytes.)
pub fn tel_digits(recorded: &str) -> Option<String> {
    let text = recorded.trim();
    let international = text.starts_with('+');
    let mut digits = String::with_capacity(text.len());
    let mut trunk_skipped = false;
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        let rest = text.get(at..).unwrap_or_default();
        match c {
            '0'..='9' => digits.push(c),
            '+' if at == 0 => digits.push(c),
            // `+44 (0)20 …`: the bracketed trunk zero is not dialled internationally.
            '(' if international && !trunk_skipped && rest.starts_with("(0)") => {
                trunk_skipped = true;
                chars.nth(1);
            }
            c if is_separator(c) => {}
            _ if is_extension(rest) => break,
            _ => return None,
        }
    }
    (digits.trim_start_matches('+').len() >= 3).then_some(digits)
}

/// Whether `rest` is an extension: `#`, `x`, `ext`, `extn` or `extension` (any case), then
/// its digits.
fn is_extension(rest: &str) -> bool {
    let after_marker = match rest.strip_prefix('#') {
        Some(after) => after,
        None => {
            let word_end = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            let (Some(word), Some(after)) = (rest.get(..word_end), rest.get(word_end..)) else {
                return false;
            };
            let marker = ["x", "ext", "extn", "extension"]
                .iter()
                .any(|marker| word.eq_ignore_ascii_case(marker));
            if !marker {
                return false;
            }
            after
        }
    };
    let number = after_marker.trim_start_matches(['.', ':', ' ']);
    !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
}

/// The blocked range a number falls in, if any.
pub fn blocked_range(number: &E164) -> Option<BlockedKind> {
    let digits = number.digits();
    if ALLOWED_INSIDE_BLOCKED.iter().any(|p| digits.starts_with(p)) {
        return None;
    }
    // North America's 976 information services: the exchange after any area code.
    if digits.len() == 11 && digits.starts_with('1') && digits.get(4..7) == Some("976") {
        return Some(BlockedKind::PremiumRate);
    }
    BLOCKED_RANGES
        .iter()
        .find(|range| digits.starts_with(range.prefix) && digits.len() >= range.min_digits)
        .map(|range| range.kind)
}

/// Normalises `raw` and applies the destination rules.
pub fn check(policy: &DestinationPolicy, raw: &str) -> Result<E164, Refusal> {
    let number = normalise(raw).map_err(Refusal::InvalidNumber)?;
    if let Some(kind) = blocked_range(&number) {
        return Err(Refusal::BlockedRange(kind));
    }
    match country_of(&number) {
        Some(country) if policy.allows(country) => Ok(number),
        _ => Err(Refusal::CountryNotAllowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_patient_record_formats() {
        let table = [
            ("07700 900123", "+447700900123"),
            ("07700900123", "+447700900123"),
            ("+44 (0)7700 900456", "+447700900456"),
            ("+44 7700 900456", "+447700900456"),
            ("0044 7700 900789", "+447700900789"),
            ("07700-900-321", "+447700900321"),
            ("020 7946 0123", "+442079460123"),
            ("(020) 7946 0123", "+442079460123"),
            ("+44 20 7946 0999", "+442079460999"),
            ("0118 496 0000", "+441184960000"),
            ("+1 202 555 0143", "+12025550143"),
            ("  07700.900.123 ", "+447700900123"),
            ("+353 1 555 0101", "+35315550101"),
            // The trunk zero kept after the country code, as many records write it.
            ("+44 07700 900123", "+447700900123"),
            ("0044 020 7946 0123", "+442079460123"),
            ("+353 01 555 0101", "+35315550101"),
            ("+39 06 1234 5678", "+390612345678"),
        ];
        for (raw, expected) in table {
            assert_eq!(
                normalise(raw).map(|n| n.to_string()),
                Ok(expected.to_owned()),
                "{raw}"
            );
        }
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        // Found by the fuzz target: a double zero after +44 is not a trunk zero.
        for raw in [
            "+44 (007 )07)00228",
            "+44 00 7700 900123",
            "+353 00 1 555 0101",
        ] {
            if let Ok(once) = normalise(raw) {
                assert_eq!(normalise(once.as_str()), Ok(once.clone()), "{raw}");
            }
        }
    }

    #[test]
    fn refuses_what_is_not_a_number() {
        let table = [
            ("", NumberError::Empty),
            ("   ", NumberError::Empty),
            ("07700 90012x", NumberError::NotANumber),
            ("ext. 123", NumberError::NotANumber),
            ("7700 900123", NumberError::NotANumber),
            ("+44 7700", NumberError::TooShort),
            ("07700 9001", NumberError::TooShort),
            ("07700 900123 456", NumberError::TooLong),
            ("+44 7700 900123 4567 89", NumberError::TooLong),
            ("07700+900123", NumberError::NotANumber),
        ];
        for (raw, expected) in table {
            assert_eq!(normalise(raw), Err(expected), "{raw}");
        }
    }

    #[test]
    fn uk_only_policy_table() {
        // Ofcom drama ranges where one exists; made-up patterns for the classes without one.
        let policy = DestinationPolicy::default();
        let table: &[(&str, Result<&str, Refusal>)] = &[
            ("07700 900123", Ok("+447700900123")),
            ("020 7946 0123", Ok("+442079460123")),
            ("0118 496 0000", Ok("+441184960000")),
            ("07624 123456", Ok("+447624123456")),
            ("0808 157 0123", Ok("+448081570123")),
            (
                "09098 790000",
                Err(Refusal::BlockedRange(BlockedKind::PremiumRate)),
            ),
            (
                "0871 123 4567",
                Err(Refusal::BlockedRange(BlockedKind::SpecialService)),
            ),
            (
                "070 1234 5678",
                Err(Refusal::BlockedRange(BlockedKind::PersonalNumber)),
            ),
            (
                "076 1234 5678",
                Err(Refusal::BlockedRange(BlockedKind::Pager)),
            ),
            ("+1 202 555 0143", Err(Refusal::CountryNotAllowed)),
            ("+353 1 555 0101", Err(Refusal::CountryNotAllowed)),
            ("+81 3 1234 5678", Err(Refusal::CountryNotAllowed)),
            ("", Err(Refusal::InvalidNumber(NumberError::Empty))),
        ];
        for (raw, expected) in table {
            assert_eq!(
                check(&policy, raw).as_ref().map(E164::as_str),
                expected.as_ref().map(|s| *s),
                "{raw}"
            );
        }
    }

    #[test]
    fn allowlist_policy_and_foreign_blocked_ranges() {
        let policy = DestinationPolicy::parse("countries:GB, ie").unwrap();
        assert_eq!(policy, DestinationPolicy::Countries(vec!["GB", "IE"]));
        assert!(check(&policy, "+353 1 555 0101").is_ok());
        assert_eq!(
            check(&policy, "+353 1550 123456"),
            Err(Refusal::BlockedRange(BlockedKind::PremiumRate))
        );
        assert_eq!(
            check(&policy, "+1 202 555 0143"),
            Err(Refusal::CountryNotAllowed)
        );
        let us = DestinationPolicy::parse("countries:US").unwrap();
        assert_eq!(
            check(&us, "+1 900 555 0100"),
            Err(Refusal::BlockedRange(BlockedKind::PremiumRate))
        );
        assert_eq!(check(&us, "07700 900123"), Err(Refusal::CountryNotAllowed));
    }

    #[test]
    fn north_america_is_told_apart_by_area_code() {
        let us = DestinationPolicy::parse("countries:US").unwrap();
        let us_and_canada = DestinationPolicy::parse("countries:US,CA").unwrap();
        let every_country =
            DestinationPolicy::Countries(COUNTRIES.iter().map(|country| country.iso).collect());
        type Decision = Result<(), Refusal>;
        // (number, under US, under US+CA)
        let table: &[(&str, Decision, Decision)] = &[
            ("+1 202 555 0143", Ok(()), Ok(())),
            ("+1 787 555 0143", Ok(()), Ok(())), // Puerto Rico is the US
            ("+1 416 555 0143", Err(Refusal::CountryNotAllowed), Ok(())), // Toronto
            ("+1 604 555 0143", Err(Refusal::CountryNotAllowed), Ok(())), // Vancouver
            // Jamaica, the Dominican Republic, the BVI, Turks and Caicos: never, under any policy.
            (
                "+1 876 555 0143",
                Err(Refusal::CountryNotAllowed),
                Err(Refusal::CountryNotAllowed),
            ),
            (
                "+1 809 555 0143",
                Err(Refusal::CountryNotAllowed),
                Err(Refusal::CountryNotAllowed),
            ),
            (
                "+1 284 555 0143",
                Err(Refusal::CountryNotAllowed),
                Err(Refusal::CountryNotAllowed),
            ),
            (
                "+1 649 555 0143",
                Err(Refusal::CountryNotAllowed),
                Err(Refusal::CountryNotAllowed),
            ),
            // 976 information services inside any area code; the 900 area code.
            (
                "+1 212 976 0143",
                Err(Refusal::BlockedRange(BlockedKind::PremiumRate)),
                Err(Refusal::BlockedRange(BlockedKind::PremiumRate)),
            ),
            (
                "+1 416 976 0143",
                Err(Refusal::BlockedRange(BlockedKind::PremiumRate)),
                Err(Refusal::BlockedRange(BlockedKind::PremiumRate)),
            ),
            (
                "+1 900 555 0143",
                Err(Refusal::BlockedRange(BlockedKind::PremiumRate)),
                Err(Refusal::BlockedRange(BlockedKind::PremiumRate)),
            ),
            ("+1 976 555 0143", Ok(()), Ok(())), // an area code 976 would be an ordinary one
        ];
        for (raw, under_us, under_us_and_canada) in table {
            assert_eq!(check(&us, raw).map(|_| ()), *under_us, "{raw} under US");
            assert_eq!(
                check(&us_and_canada, raw).map(|_| ()),
                *under_us_and_canada,
                "{raw} under US,CA"
            );
        }
        for caribbean in OTHER_NANP_AREA_CODES {
            let raw = format!("+1{caribbean}5550143");
            assert_eq!(
                check(&every_country, &raw),
                Err(Refusal::CountryNotAllowed),
                "{raw}"
            );
        }
        assert!(CANADA_AREA_CODES
            .iter()
            .all(|area| !OTHER_NANP_AREA_CODES.contains(area)));
    }

    #[test]
    fn premium_and_special_ranges_of_ireland_and_spain() {
        let policy = DestinationPolicy::parse("countries:GB,IE,ES").unwrap();
        let table: &[(&str, Result<(), Refusal>)] = &[
            (
                "+353 1512 123456",
                Err(Refusal::BlockedRange(BlockedKind::PremiumRate)),
            ),
            (
                "+353 1530 123456",
                Err(Refusal::BlockedRange(BlockedKind::PremiumRate)),
            ),
            (
                "+353 1590 123456",
                Err(Refusal::BlockedRange(BlockedKind::PremiumRate)),
            ),
            ("+353 1 512 3456", Ok(())),  // Dublin
            ("+353 1800 123456", Ok(())), // freephone
            ("+34 800 123 456", Ok(())),
            ("+34 900 123 456", Ok(())),
            ("+34 91 123 4567", Ok(())), // Madrid
            (
                "+34 803 123 456",
                Err(Refusal::BlockedRange(BlockedKind::PremiumRate)),
            ),
            (
                "+34 806 123 456",
                Err(Refusal::BlockedRange(BlockedKind::PremiumRate)),
            ),
            (
                "+34 807 123 456",
                Err(Refusal::BlockedRange(BlockedKind::PremiumRate)),
            ),
            (
                "+34 905 123 456",
                Err(Refusal::BlockedRange(BlockedKind::SpecialService)),
            ),
            (
                "+34 902 123 456",
                Err(Refusal::BlockedRange(BlockedKind::SpecialService)),
            ),
        ];
        for (raw, expected) in table {
            assert_eq!(check(&policy, raw).map(|_| ()), *expected, "{raw}");
        }
    }

    #[test]
    fn policy_configuration_is_validated() {
        assert_eq!(
            DestinationPolicy::parse("uk-only"),
            Ok(DestinationPolicy::UkOnly)
        );
        assert_eq!(
            DestinationPolicy::parse(" UK-ONLY "),
            Ok(DestinationPolicy::UkOnly)
        );
        for bad in [
            "",
            "everything",
            "countries:",
            "countries:XX",
            "countries:GB,XX",
        ] {
            assert!(DestinationPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusal_codes_and_messages_never_hold_the_number() {
        let refusal = check(&DestinationPolicy::default(), "09098 790000").unwrap_err();
        assert_eq!(refusal.code(), "number_blocked");
        assert!(!refusal.to_string().contains("9098"));
        assert_eq!(
            Refusal::InvalidNumber(NumberError::Empty).code(),
            "number_missing"
        );
        assert_eq!(Refusal::CountryNotAllowed.code(), "country_not_allowed");
    }

    #[test]
    fn limits_table() {
        let limits = CallLimits {
            per_clinician_per_hour: 3,
            per_patient_per_hour: 2,
        };
        let table = [
            (0, 0, Ok(())),
            (2, 1, Ok(())),
            (3, 0, Err(LimitExceeded::Clinician)),
            (0, 2, Err(LimitExceeded::Patient)),
            (5, 5, Err(LimitExceeded::Clinician)),
        ];
        for (clinician, patient, expected) in table {
            assert_eq!(
                check_limits(limits, clinician, patient),
                expected,
                "{clinician}/{patient}"
            );
        }
        assert_eq!(CallLimits::default().per_patient_per_hour, 6);
    }

    #[test]
    fn tel_links_dial_only_a_number_written_as_one() {
        let table = [
            ("7946 0123", Some("79460123")),
            ("020 7946 0123 ext 4", Some("02079460123")),
            ("020 7946 0123 Ext. 12", Some("02079460123")),
            ("020 7946 0123 extension: 12", Some("02079460123")),
            ("020 7946 0123 x4", Some("02079460123")),
            ("020 7946 0123 #4", Some("02079460123")),
            ("020 7946 0123 EXTN 4", Some("02079460123")),
            ("07700 900123 emergency 2", None),
            ("+44 (0)20 7946", Some("+44207946")),
            ("(01632) 960 00", Some("0163296000")),
            ("07700 9OO123", None),
            ("07700 900123 (mum)", None),
            ("020 7946 0123 ext", None),
            ("ext 4", None),
            ("12", None),
            ("", None),
            ("ask at reception", None),
        ];
        for (recorded, expected) in table {
            assert_eq!(tel_digits(recorded).as_deref(), expected, "{recorded}");
        }
    }

    proptest! {
        /// Whatever is recorded, a link dials only digits that are shown, in their order.
        #[test]
        fn a_tel_link_dials_only_digits_shown_in_their_order(recorded in "[0-9 ()+xet#.a-z-]{0,24}") {
            if let Some(dialled) = tel_digits(&recorded) {
                prop_assert!(dialled.trim_start_matches('+').bytes().all(|b| b.is_ascii_digit()));
                let mut shown = recorded.chars().filter(char::is_ascii_digit);
                for digit in dialled.chars().filter(char::is_ascii_digit) {
                    prop_assert!(shown.any(|c| c == digit), "{} dials {}", recorded, dialled);
                }
            }
        }

        /// No policy ever admits a number in a blocked range.
        #[test]
        fn blocked_ranges_are_never_admitted(range in 0usize..BLOCKED_RANGES.len(), tail in "[0-9]{6,9}", allow_all in any::<bool>()) {
            let blocked = &BLOCKED_RANGES[range];
            let raw = format!("+{}{}", blocked.prefix, tail);
            prop_assume!(raw.len() > blocked.min_digits);
            let policy = if allow_all {
                DestinationPolicy::Countries(COUNTRIES.iter().map(|c| c.iso).collect())
            } else {
                DestinationPolicy::UkOnly
            };
            if let Ok(number) = check(&policy, &raw) {
                prop_assert!(ALLOWED_INSIDE_BLOCKED.iter().any(|p| number.digits().starts_with(p)), "{}", raw);
            }
        }

        /// However a number in a blocked range is written in a patient record (national,
        /// `00`, `+`, `+44 (0)`, with separators anywhere), no policy admits it: the answer is
        /// a refusal, and a blocked-range refusal whenever the number itself is well-formed.
        #[test]
        fn no_policy_admits_a_blocked_number_in_any_written_form(
            range in 0usize..BLOCKED_RANGES.len(),
            tail in "[0-9]{0,10}",
            form in 0usize..4,
            separators in proptest::collection::vec(
                (0usize..16, prop_oneof![Just(" "), Just("-"), Just("."), Just("\u{a0}"), Just("(")]),
                0..4,
            ),
        ) {
            let blocked = &BLOCKED_RANGES[range];
            let digits = format!("{}{}", blocked.prefix, tail);
            let uk_national = digits.strip_prefix("44");
            let (head, rest) = match (form, uk_national) {
                (0, _) => ("+", digits.as_str()),
                (1, _) => ("00", digits.as_str()),
                (2, Some(national)) => ("0", national),
                (3, Some(national)) => ("+44 (0)", national),
                _ => ("+", digits.as_str()),
            };
            let mut rest = rest.to_owned();
            for (at, separator) in separators {
                let mut at = at.min(rest.len());
                while !rest.is_char_boundary(at) {
                    at -= 1;
                }
                rest.insert_str(at, separator);
            }
            let written = format!("{head}{rest}");
            let policies = [
                DestinationPolicy::UkOnly,
                DestinationPolicy::Countries(COUNTRIES.iter().map(|c| c.iso).collect()),
            ];
            let exception = ALLOWED_INSIDE_BLOCKED.iter().any(|p| digits.starts_with(p));
            let in_range = !exception && digits.len() >= blocked.min_digits;
            for policy in &policies {
                let decision = check(policy, &written);
                if let Ok(number) = &decision {
                    prop_assert!(!in_range, "{:?} admitted {} as {}", policy, written, number);
                }
                if let Ok(number) = normalise(&written) {
                    prop_assert_eq!(number.digits(), digits.as_str(), "{}", written);
                    if in_range {
                        prop_assert!(matches!(decision, Err(Refusal::BlockedRange(_))), "{} → {:?}", written, decision);
                    }
                }
            }
        }

        /// Formatting noise never changes the result.
        #[test]
        fn formatting_is_irrelevant(national in "7700900[0-9]{3}", separator in prop_oneof![Just(" "), Just("-"), Just("."), Just("")]) {
            let plain = format!("0{national}");
            let spaced = format!("0{}{}{}", &national[..4], separator, &national[4..]);
            prop_assert_eq!(normalise(&plain), normalise(&spaced));
        }
    }
}
