//! Checks `dial_policy::normalise` against the `phonenumber` crate (libphonenumber's data) on a
//! corpus of numbers as they appear in patient records: where the oracle parses a number with
//! the UK as the default region, our E.164 must be the same; where it calls a UK number
//! invalid, we must not admit it as a UK mobile or geographic number.

use phonenumber::country::Id;
use shared::dial_policy::{check, normalise, DestinationPolicy};

/// Numbers as found in records: drama ranges, other formats, and deliberate junk. Classes with no
/// Ofcom drama range (Isle of Man mobiles, 0871, 070 personal, 076 pagers) and other countries use
/// made-up patterns (`123 4567`, `555 01xx`); nothing here is ever dialled.
const CORPUS: &[&str] = &[
    "07700 900123",
    "07700900123",
    "+44 (0)7700 900456",
    "+44 7700 900456",
    "0044 7700 900789",
    "07700-900-321",
    "07700.900.654",
    "(07700) 900 999",
    "020 7946 0123",
    "(020) 7946 0000",
    "+44 20 7946 0999",
    "0207 946 0555",
    "0118 496 0000",
    "0161 496 0000",
    "0131 496 0000",
    "029 2018 0000",
    "028 9018 0000",
    "0808 157 0123",
    "0306 999 0123",
    "+1 202 555 0143",
    "+353 1 555 0101",
    "+33 1 99 00 12 34",
    "07624 123456",
    "09098 790000",
    "0871 123 4567",
    "070 1234 5678",
    "076 1234 5678",
    "07700 9001",
    "07700 900123 456",
    "+44 7700",
    "12345",
];

/// Ofcom's ranges reserved for drama (unallocated, so libphonenumber calls them invalid; we admit
/// them on purpose: they are what tests and demos dial).
const OFCOM_DRAMA_PREFIXES: &[&str] = &[
    "+447700900",
    "+4420794600",
    "+4411849600",
    "+4411349600",
    "+4411449600",
    "+4411549600",
    "+4411649600",
    "+4411749600",
    "+4412149600",
    "+4413149600",
    "+4414149600",
    "+4415149600",
    "+4416149600",
    "+4419149800",
    "+4428901800",
    "+4429201800",
    "+4416329600",
];

fn is_ofcom_drama(e164: &str) -> bool {
    OFCOM_DRAMA_PREFIXES.iter().any(|p| e164.starts_with(p))
}

#[test]
fn normalise_agrees_with_libphonenumber_on_the_corpus() {
    let mut compared = 0;
    for raw in CORPUS {
        let ours = normalise(raw);
        let oracle = phonenumber::parse(Some(Id::GB), raw);
        match (&ours, &oracle) {
            (Ok(number), Ok(parsed)) => {
                let oracle_e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
                assert_eq!(number.as_str(), oracle_e164, "{raw}");
                compared += 1;
            }
            (Ok(number), Err(_)) => {
                panic!("{raw}: we accept {number} but libphonenumber cannot parse it")
            }
            (Err(_), _) => {} // we may be stricter than the oracle's parser
        }
        // Anything libphonenumber calls invalid must not pass our UK policy as a valid line.
        if let Ok(parsed) = &oracle {
            if !phonenumber::is_valid(parsed) {
                let admitted = check(&DestinationPolicy::UkOnly, raw);
                let drama = admitted.as_ref().is_ok_and(|n| is_ofcom_drama(n.as_str()));
                assert!(
                    admitted.is_err() || drama,
                    "{raw}: libphonenumber says invalid, our policy admits it"
                );
            }
        }
    }
    assert!(compared >= 20, "compared only {compared} numbers");
}

#[test]
fn every_admitted_uk_number_is_a_uk_number_to_the_oracle() {
    for raw in CORPUS {
        if let Ok(number) = check(&DestinationPolicy::UkOnly, raw) {
            let parsed = phonenumber::parse(None, number.as_str()).expect("admitted numbers parse");
            assert_eq!(parsed.code().value(), 44, "{raw}");
        }
    }
}
