//! Time as values: Unix seconds to RFC 3339 UTC, and Twilio's RFC 2822 timestamps back, without a
//! date library; and the waits of a backoff table.

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The wait before attempt `attempt` (0 first) of a backoff `table`, its last wait repeated.
pub fn backoff_wait(table: &[u64], attempt: u32) -> u64 {
    let index = usize::try_from(attempt).unwrap_or(usize::MAX);
    table
        .get(index)
        .or(table.last())
        .copied()
        .unwrap_or_default()
}

/// `2026-11-25T06:08:02Z` for a Unix time in seconds.
pub fn rfc3339_utc(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let seconds_of_day = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds_of_day / 3600,
        (seconds_of_day % 3600) / 60,
        seconds_of_day % 60
    )
}

/// Days in `month` (1–12) of `year` (Gregorian).
fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses Twilio's callback `Timestamp` (RFC 2822, e.g. `Wed, 25 Nov 2026 06:08:02 +0000`) into
/// Unix seconds. `None` for anything else.
pub fn parse_rfc2822(value: &str) -> Option<i64> {
    let value = value.trim();
    let rest = value.split_once(", ").map_or(value, |(_, rest)| rest);
    let mut parts = rest.split_whitespace();
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':');
    // Unsigned: a `-` in the clock is refused rather than subtracted.
    let hour = i64::from(clock.next()?.parse::<u8>().ok()?);
    let minute = i64::from(clock.next()?.parse::<u8>().ok()?);
    let second = i64::from(clock.next().unwrap_or("0").parse::<u8>().ok()?);
    let zone = parts.next().unwrap_or("+0000");
    let offset_minutes = match zone {
        "GMT" | "UT" | "UTC" | "Z" => 0,
        _ => {
            // `strip_prefix`, not `split_at(1)`: a zone starting with a multi-byte character
            // is refused, where splitting inside that character would panic.
            let (sign, digits) = match (zone.strip_prefix('+'), zone.strip_prefix('-')) {
                (Some(digits), _) => (1, digits),
                (_, Some(digits)) => (-1, digits),
                _ => return None,
            };
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let hours: i64 = digits.get(0..2)?.parse().ok()?;
            let minutes: i64 = digits.get(2..4)?.parse().ok()?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 60 + minutes)
        }
    };
    // RFC 2822 years have four digits (or more, which no callback of ours will see); beyond
    // that the day count would overflow.
    if !(1..=days_in_month(year, month)).contains(&day)
        || !(1000..=9999).contains(&year)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
            - offset_minutes * 60,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backoff_table_repeats_its_last_wait() {
        let table = [5, 10, 20];
        let waits: Vec<u64> = [0, 1, 2, 3, u32::MAX]
            .into_iter()
            .map(|attempt| backoff_wait(&table, attempt))
            .collect();
        assert_eq!(waits, [5, 10, 20, 20, 20]);
        assert_eq!(backoff_wait(&[], 0), 0);
    }

    #[test]
    fn known_instants() {
        let table = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_795_586_882, "2026-11-25T06:08:02Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
            (-1, "1969-12-31T23:59:59Z"),
        ];
        for (unix, expected) in table {
            assert_eq!(rfc3339_utc(unix), expected, "{unix}");
        }
    }

    #[test]
    fn parses_twilio_timestamps() {
        let table = [
            ("Wed, 25 Nov 2026 06:08:02 +0000", Some(1_795_586_882)),
            ("25 Nov 2026 06:08:02 +0000", Some(1_795_586_882)),
            ("Wed, 25 Nov 2026 07:08:02 +0100", Some(1_795_586_882)),
            ("Wed, 25 Nov 2026 01:08:02 -0500", Some(1_795_586_882)),
            ("Wed, 25 Nov 2026 06:08:02 GMT", Some(1_795_586_882)),
            ("Tue, 29 Feb 2000 00:00:00 +0000", Some(951_782_400)),
            ("2026-11-25T06:08:02Z", None),
            ("Wed, 25 Foo 2026 06:08:02 +0000", None),
            ("Wed, 25 Nov 2026 25:08:02 +0000", None),
            ("Wed, 25 Nov 2026 06:08:02 é0000", None),
            ("Wed, 25 Nov 2026 06:08:02 +é000", None),
            ("Wed, 25 Nov 2026 06:08:02 0000", None),
            ("Wed, 25 Nov 2026 -06:08:02 +0000", None),
            ("Wed, 25 Nov 2026 06:08:02 +-100", None),
            ("Wed, 25 Nov 2026 06:08:02 +00000", None),
            ("Wed, 25 Nov 2026 06:08:02 -4770", None),
            ("Tue, 31 Feb 2026 06:08:02 +0000", None),
            ("Thu, 29 Feb 2026 06:08:02 +0000", None),
            ("Sun, 29 Feb 2032 00:00:00 +0000", Some(1_961_625_600)),
            ("Tue, 29 Feb 2100 00:00:00 +0000", None),
            ("Mon, 31 Apr 2026 00:00:00 +0000", None),
            ("Wed, 25 Nov 99999999999 06:08:02 +0000", None),
            ("", None),
        ];
        for (input, expected) in table {
            assert_eq!(parse_rfc2822(input), expected, "{input}");
        }
    }

    use proptest::prelude::*;

    proptest::proptest! {
        #[test]
        fn rfc2822_round_trips(unix in 0i64..4_102_444_800) {
            // Build the RFC 2822 form from the RFC 3339 one.
            let iso = rfc3339_utc(unix);
            let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
            let month: usize = iso[5..7].parse().unwrap();
            let text = format!("{} {} {} {} +0000", &iso[8..10], months[month - 1], &iso[0..4], &iso[11..19]);
            proptest::prop_assert_eq!(parse_rfc2822(&text), Some(unix));
        }

        /// Whatever a signed callback carries as its timestamp, parsing answers and never panics.
        #[test]
        fn any_text_parses_or_is_refused(text in "\\PC{0,40}", zone in "\\PC{0,6}") {
            let _ = parse_rfc2822(&text);
            let _ = parse_rfc2822(&format!("Wed, 25 Nov 2026 06:08:02 {zone}"));
        }

        /// Timestamps of the right shape with any numbers in them (huge or negative years, days,
        /// hours, zones): parsing never panics (overflow included, as tests build with overflow
        /// checks), and an accepted one is within a day of its date at midnight UTC.
        #[test]
        fn any_numbers_in_the_shape_parse_or_are_refused(
            day in prop_oneof![0i64..=32, any::<i64>()],
            month in prop::sample::select(vec!["Jan", "Feb", "Dec", "Xyz"]),
            year in prop_oneof![1900i64..=2100, any::<i64>()],
            hour in prop_oneof![0i64..=24, any::<i64>()],
            minute in 0i64..=61,
            second in 0i64..=61,
            zone in prop_oneof![Just("+0000".to_owned()), Just("GMT".to_owned()), "[+-][0-9]{4}", "[+-][0-9]{0,9}"],
        ) {
            let text = format!("Wed, {day} {month} {year} {hour}:{minute}:{second} {zone}");
            if let Some(unix) = parse_rfc2822(&text) {
                let midnight = parse_rfc2822(&format!("{day} {month} {year} 00:00:00 +0000"));
                let midnight = midnight.expect("the same date at midnight UTC parses too");
                proptest::prop_assert!((unix - midnight).abs() <= 2 * 86_400, "{text}");
            }
        }
    }
}
