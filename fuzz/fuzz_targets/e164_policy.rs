//! Fuzz target: E.164 parsing, the lenient normaliser for numbers in patient records, and the
//! dialing policy. Properties: nothing panics; strict parse → display → parse is the identity;
//! normalising is idempotent and its result parses strictly; every policy decides the same for
//! the raw text and for its normalised form, twice in a row; an admitted number is never in a
//! blocked range (bar the listed exceptions) and belongs to an allowed country.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::dial_policy::{
    blocked_range, check, country_of, normalise, DestinationPolicy, ALLOWED_INSIDE_BLOCKED,
    BLOCKED_RANGES, COUNTRIES,
};
use shared::ids::E164;

fn policies() -> Vec<DestinationPolicy> {
    vec![
        DestinationPolicy::UkOnly,
        DestinationPolicy::Countries(COUNTRIES.iter().map(|c| c.iso).collect()),
        DestinationPolicy::Countries(vec!["IE", "US"]),
    ]
}

fn in_a_blocked_range(number: &E164) -> bool {
    let digits = number.digits();
    !ALLOWED_INSIDE_BLOCKED.iter().any(|p| digits.starts_with(p))
        && BLOCKED_RANGES
            .iter()
            .any(|r| digits.starts_with(r.prefix) && digits.len() >= r.min_digits)
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(strict) = E164::parse(raw) {
        let shown = strict.to_string();
        assert_eq!(shown, raw);
        assert_eq!(E164::parse(&shown).as_ref(), Ok(&strict));
        assert!(strict
            .masked()
            .ends_with(&strict.digits()[strict.digits().len() - 3..]));
    }

    let normalised = normalise(raw);
    assert_eq!(normalise(raw), normalised, "deterministic");
    if let Ok(number) = &normalised {
        assert_eq!(E164::parse(number.as_str()).as_ref(), Ok(number));
        assert_eq!(
            normalise(number.as_str()).as_ref(),
            Ok(number),
            "idempotent"
        );
    }

    // A policy string from the input, if it is one, joins the fixed policies.
    let mut all_policies = policies();
    if let Ok(policy) = DestinationPolicy::parse(raw) {
        all_policies.push(policy);
    }
    for policy in &all_policies {
        let decision = check(policy, raw);
        assert_eq!(check(policy, raw), decision, "stable");
        match (&normalised, &decision) {
            (Ok(number), _) => assert_eq!(check(policy, number.as_str()), decision, "{number}"),
            (Err(error), Err(refusal)) => {
                assert_eq!(
                    refusal.code(),
                    shared::dial_policy::Refusal::InvalidNumber(*error).code()
                )
            }
            (Err(_), Ok(number)) => panic!("admitted {number} that does not normalise"),
        }
        if let Ok(number) = &decision {
            assert!(
                !in_a_blocked_range(number),
                "admitted a blocked number {number}"
            );
            assert_eq!(blocked_range(number), None);
            let country = country_of(number).expect("an admitted number has a known country");
            match policy {
                DestinationPolicy::UkOnly => assert_eq!(country.iso, "GB"),
                DestinationPolicy::Countries(isos) => assert!(isos.contains(&country.iso)),
            }
        }
    }
});
