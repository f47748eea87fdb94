//! Tests of telemetry: masking (table and property), codes and keys, the alert rules with their
//! deduplication and resolution, the Datadog and Slack payloads, and the call statistics.

use super::*;
use proptest::prelude::*;

#[test]
fn redact_removes_phone_numbers_in_every_format_and_keeps_the_rest() {
    let table: &[(&str, &str)] = &[
        ("call to +447700900123 failed", "call to [number] failed"),
        ("07700 900123", "[number]"),
        ("+44 (0)7700 900456", "[number]"),
        ("0044 7700 900789", "[number]"),
        ("07700-900-321", "[number]"),
        ("020 7946 0123 then", "[number] then"),
        ("tel:+12025550143", "tel:[number]"),
        ("447700900123", "[number]"),
        ("phone: 07700/900/123", "phone: [number]"),
        // SIDs, dates, times, small counts survive.
        (
            "CA0123456789abcdef0123456789abcdef",
            "CA0123456789abcdef0123456789abcdef",
        ),
        ("at 2026-11-25T09:30:00Z", "at 2026-11-25T09:30:00Z"),
        ("2026-11-25", "2026-11-25"),
        ("2026/11/25", "2026/11/25"),
        ("GET /api/v1/appointments/42", "GET /api/v1/appointments/42"),
        ("took 1234 ms, 3 calls", "took 1234 ms, 3 calls"),
        ("error 31005", "error 31005"),
        ("clinician-ada", "clinician-ada"),
        ("", ""),
        ("(call)", "(call)"),
        // Credentials: JWTs and Bearer values, wherever they stand.
        (
            "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl expired",
            "token [token] expired",
        ),
        (
            "authorization=Bearer abc/DEF+123=, retry",
            "authorization=Bearer [token], retry",
        ),
        ("bearer eyJhbGciOi.x", "bearer [token]"),
        ("(eyJhbGciOiJub25lIn0.)", "([token])"),
        // Not credentials: no dot, inside a word, a bare "Bearer".
        ("eyJust", "eyJust"),
        ("keyJ.x", "keyJ.x"),
        ("Bearer", "Bearer"),
        ("Bearer ", "Bearer "),
        // 34 bytes starting with a multi-byte character: not a SID, and no panic.
        (
            "\u{20ac}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "\u{20ac}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ),
    ];
    for (input, expected) in table {
        assert_eq!(redact(input), *expected, "{input:?}");
    }
}

#[test]
fn the_median_of_two_long_calls_does_not_overflow() {
    assert_eq!(
        median(vec![3_000_000_000, 3_000_000_002]),
        Some(3_000_000_001)
    );
    assert_eq!(median(vec![u32::MAX, u32::MAX]), Some(u32::MAX));
    assert_eq!(median(vec![]), None);
}

proptest! {
    #[test]
    fn no_uk_or_nanp_number_survives_redaction(
        national in "7[0-9]{9}|20[0-9]{8}",
        style in 0usize..5,
        before in "[a-z ,:=]{0,12}",
        after in "[ ,.;:]{0,3}[a-z ]{0,12}",
    ) {
        let number = match style {
            0 => format!("+44{national}"),
            1 => format!("0{national}"),
            2 => format!("0044 {} {}", &national[..4], &national[4..]),
            3 => format!("+44 (0){}-{}", &national[..4], &national[4..]),
            _ => format!("44{national}"),
        };
        let text = format!("{before}{number}{after}");
        let redacted = redact(&text);
        prop_assert!(!redacted.contains(&national[national.len() - 6..]), "{text} → {redacted}");
    }

    #[test]
    fn no_jwt_survives_redaction(
        header in "[A-Za-z0-9_-]{4,40}",
        claims in "[A-Za-z0-9_-]{4,80}",
        signature in "[A-Za-z0-9_-]{0,60}",
        before in "([a-z:=,]{0,12} )?",
        after in "( [a-z ,.;:]{0,12})?",
    ) {
        let jwt = format!("eyJ{header}.{claims}.{signature}");
        let text = format!("{before}{jwt}{after}");
        prop_assert_eq!(redact(&text), format!("{before}[token]{after}"));
    }

    #[test]
    fn redaction_never_grows_a_clean_text(text in "[a-zA-Z ,.:_-]{0,60}") {
        // (What reads as a credential is the one thing a clean text may lose.)
        prop_assume!(!text.contains("eyJ") && !text.to_ascii_lowercase().contains("bearer "));
        prop_assert_eq!(redact(&text), text);
    }
}

#[test]
fn codes_and_keys_carry_no_free_text() {
    assert_eq!(code("permission_missing"), "permission_missing");
    assert_eq!(code("no-line-free"), "no-line-free");
    assert_eq!(code("Dr Ada +447700900123"), "other");
    assert_eq!(code(""), "other");
    // A number sent as a reason, bare or inside a code, is not a code.
    assert_eq!(code("07700900123"), "other");
    assert_eq!(code("reason-447700900123"), "other");
    assert_eq!(code("error-31005"), "error-31005");
    assert_eq!(code("20261125"), "20261125", "eight digits (a date) pass");
    let key = clinician_key("clinician-ada", "salt");
    assert_eq!(key.len(), 12);
    assert_eq!(key, clinician_key("clinician-ada", "salt"), "stable");
    assert_ne!(key, clinician_key("clinician-cy", "salt"));
    assert_ne!(key, clinician_key("clinician-ada", "other salt"));
    assert!(!key.contains("ada"));
    let buckets = [
        (0, "none"),
        (30, "under-1m"),
        (60, "1m-5m"),
        (600, "5m-15m"),
        (1_000, "15m-30m"),
        (7_200, "30m-plus"),
    ];
    for (seconds, bucket) in buckets {
        assert_eq!(duration_bucket(seconds), bucket);
    }
}

fn outcome(at_ms: u64, status: CallStatus, pool: &str) -> Stamped {
    Stamped {
        at_ms,
        event: Event::CallOutcome {
            status,
            duration_seconds: if status == CallStatus::Completed {
                90
            } else {
                0
            },
            pool_number: Some(pool.into()),
            clinician_key: Some(clinician_key("clinician-ada", "s")),
            error_code: None,
            direction: "outbound-browser".into(),
        },
    }
}

/// A fixed "now" for rules that read the clock (the backlog age).
const NOW: u64 = 1_000_000;

fn config() -> AlertConfig {
    AlertConfig {
        failure_rate: 0.5,
        window_ms: 60_000,
        min_samples: 4,
        dedupe_ms: 300_000,
        backlog_limit_seconds: 600,
        forged_burst: 3,
    }
}

#[test]
fn failure_rate_needs_a_minimum_sample_and_is_judged_overall_and_per_number() {
    let cfg = config();
    // (statuses on pool A, statuses on pool B, expected condition keys)
    use CallStatus::{Busy, Canceled, Completed, Failed, NoAnswer};
    let table: Vec<(Vec<CallStatus>, Vec<CallStatus>, Vec<&str>)> = vec![
        (vec![Busy, Busy, Busy], vec![], vec![]),
        (
            vec![Busy, Busy, Failed, Completed],
            vec![],
            vec!["failure-rate:overall", "failure-rate:+447700900001"],
        ),
        (
            vec![Busy, NoAnswer, Failed, Failed],
            vec![Completed; 6],
            vec!["failure-rate:+447700900001"],
        ),
        (vec![Completed; 4], vec![Completed; 4], vec![]),
        // Cancelled calls are not failures and do not count.
        (
            vec![Canceled, Canceled, Canceled, Canceled, Busy],
            vec![],
            vec![],
        ),
    ];
    for (a, b, expected) in table {
        let mut windows = Windows::default();
        for (i, status) in a.iter().enumerate() {
            windows.record(&outcome(i as u64, *status, "+447700900001"));
        }
        for (i, status) in b.iter().enumerate() {
            windows.record(&outcome(i as u64, *status, "+447700900002"));
        }
        let keys: Vec<String> = conditions(&windows, &cfg, NOW)
            .iter()
            .map(Condition::key)
            .collect();
        assert_eq!(keys, expected, "{a:?} / {b:?}");
    }
    // The alert names the pool number by its last four digits, and survives redaction.
    let mut windows = Windows::default();
    for (i, status) in [Busy, Busy, Failed, Completed].iter().enumerate() {
        windows.record(&outcome(i as u64, *status, "+447700900001"));
    }
    let per_number = conditions(&windows, &cfg, NOW)
        .into_iter()
        .find(|c| c.key() == "failure-rate:+447700900001")
        .expect("the per-number condition");
    let text = redact(&per_number.describe(&cfg));
    assert!(text.ends_with("on the pool number ending 0001."), "{text}");
    assert!(!text.contains("7700900"), "{text}");
}

#[test]
fn alerts_fire_once_repeat_after_the_dedupe_period_and_resolve() {
    let cfg = config();
    let mut windows = Windows::default();
    let mut book = AlertBook::default();
    for i in 0..4 {
        windows.record(&outcome(1_000 + i, CallStatus::Failed, "+447700900001"));
    }
    let fired = book.step(&conditions(&windows, &cfg, NOW), &cfg, 2_000);
    assert_eq!(fired.len(), 2, "overall and the number: {fired:?}");
    assert!(fired
        .iter()
        .all(|n| matches!(n, Notification::Firing { .. })));
    assert!(
        matches!(&fired[0], Notification::Firing { text, .. } if text.contains("100%") && text.contains("4 of 4"))
    );
    // Still failing a minute later: deduplicated, nothing sent.
    windows.record(&outcome(50_000, CallStatus::Busy, "+447700900001"));
    assert!(book
        .step(&conditions(&windows, &cfg, NOW), &cfg, 60_000)
        .is_empty());
    // After the dedupe period: one reminder each.
    let again = book.step(&conditions(&windows, &cfg, NOW), &cfg, 302_000);
    assert_eq!(again.len(), 2);
    assert!(again
        .iter()
        .all(|n| matches!(n, Notification::StillFiring { .. })));
    // The window moves on; the failures leave it; the alerts resolve once.
    windows.prune(400_000, cfg.window_ms);
    let resolved = book.step(&conditions(&windows, &cfg, NOW), &cfg, 400_000);
    assert_eq!(resolved.len(), 2);
    assert!(resolved
        .iter()
        .all(|n| matches!(n, Notification::Resolved { .. })));
    assert!(book
        .step(&conditions(&windows, &cfg, NOW), &cfg, 401_000)
        .is_empty());
    assert!(book.active.is_empty());
}

#[test]
fn a_flood_of_forged_webhooks_keeps_only_the_newest_instants_and_still_alerts() {
    let cfg = config();
    let mut windows = Windows::default();
    for at in 0..(MAX_KEPT_INSTANTS as u64 + 500) {
        windows.record(&Stamped {
            at_ms: at,
            event: Event::SignatureRejected {
                route: "voice".into(),
            },
        });
        windows.record(&Stamped {
            at_ms: at,
            event: Event::PoolExhausted,
        });
    }
    assert_eq!(windows.forged_at_ms.len(), MAX_KEPT_INSTANTS);
    assert_eq!(windows.forged_at_ms.first(), Some(&500), "the oldest went");
    assert_eq!(windows.exhausted_at_ms.len(), MAX_KEPT_INSTANTS);
    let found = conditions(&windows, &cfg, MAX_KEPT_INSTANTS as u64 + 500);
    assert!(
        found.contains(&Condition::ForgedWebhooks {
            count: MAX_KEPT_INSTANTS as u32
        }),
        "{found:?}"
    );
}

#[test]
fn pool_exhaustion_backlog_and_forged_bursts_are_conditions() {
    let cfg = config();
    let mut windows = Windows::default();
    windows.record(&Stamped {
        at_ms: 10,
        event: Event::PoolExhausted,
    });
    for at in [1, 2] {
        windows.record(&Stamped {
            at_ms: at,
            event: Event::SignatureRejected {
                route: "voice".into(),
            },
        });
    }
    windows.record(&Stamped {
        at_ms: 5,
        event: Event::OutboxRetry {
            call_sid: "CA1".into(),
            attempt: 4,
            backlog_age_seconds: 900,
        },
    });
    let keys: Vec<String> = conditions(&windows, &cfg, NOW)
        .iter()
        .map(Condition::key)
        .collect();
    assert_eq!(keys, vec!["pool-exhausted", "outbox-backlog"]);
    windows.record(&Stamped {
        at_ms: 3,
        event: Event::SignatureRejected {
            route: "call-status".into(),
        },
    });
    windows.record(&Stamped {
        at_ms: 6,
        event: Event::OutboxWritten {
            call_sid: "CA1".into(),
            attempts: 5,
        },
    });
    let found = conditions(&windows, &cfg, NOW);
    let keys: Vec<String> = found.iter().map(Condition::key).collect();
    assert_eq!(keys, vec!["pool-exhausted", "forged-webhooks"]);
    for condition in &found {
        assert!(condition.describe(&cfg).ends_with('.'));
    }
    windows.prune(NOW, cfg.window_ms);
    assert!(conditions(&windows, &cfg, NOW).is_empty());
    // Two records waiting: the backlog is the older one's age, and clears only when both land.
    windows.record(&Stamped {
        at_ms: NOW,
        event: Event::OutboxRetry {
            call_sid: "CA2".into(),
            attempt: 1,
            backlog_age_seconds: 700,
        },
    });
    windows.record(&Stamped {
        at_ms: NOW,
        event: Event::OutboxRetry {
            call_sid: "CA3".into(),
            attempt: 1,
            backlog_age_seconds: 30,
        },
    });
    assert_eq!(windows.backlog_age_seconds(NOW + 10_000), 710);
    windows.record(&Stamped {
        at_ms: NOW,
        event: Event::OutboxWritten {
            call_sid: "CA2".into(),
            attempts: 2,
        },
    });
    assert_eq!(windows.backlog_age_seconds(NOW), 30);
    assert!(conditions(&windows, &cfg, NOW).is_empty());
}

#[test]
fn a_record_no_longer_reported_leaves_the_alerts_and_one_reported_again_returns_with_its_age() {
    let cfg = config();
    let mut windows = Windows::default();
    let keys = |windows: &mut Windows, now_ms: u64| -> Vec<String> {
        windows.prune(now_ms, cfg.window_ms);
        conditions(windows, &cfg, now_ms)
            .iter()
            .map(Condition::key)
            .collect()
    };
    let retry = |at_ms: u64, backlog_age_seconds: u64| Stamped {
        at_ms,
        event: Event::OutboxRetry {
            call_sid: "CA1".into(),
            attempt: 9,
            backlog_age_seconds,
        },
    };
    // Medplum down for 20 minutes: a try every 30 s, each reported; the alert holds throughout.
    let mut last = NOW;
    for step in 0..40 {
        last = NOW + step * 30_000;
        windows.record(&retry(last, 600 + step * 30));
        assert_eq!(keys(&mut windows, last + 29_000), vec!["outbox-backlog"]);
    }
    // The record is written but that report is lost: the alert holds until the record has gone
    // unreported for longer than any wait between tries, then leaves.
    assert_eq!(
        keys(&mut windows, last + BACKLOG_UNHEARD_MS),
        vec!["outbox-backlog"]
    );
    assert!(keys(&mut windows, last + BACKLOG_UNHEARD_MS + 1).is_empty());
    assert!(windows.backlog.is_empty() && windows.heard.is_empty());
    // Had it still been waiting (its reports lost, not its write), the next report brings it
    // back with its true age.
    let later = last + BACKLOG_UNHEARD_MS + 60_000;
    windows.record(&retry(later, 3_000));
    assert_eq!(windows.backlog_age_seconds(later), 3_000);
    // A refused record is tried hourly: reported hourly it stays for days; unreported for three
    // hours, it leaves.
    let hour = 3_600_000;
    let refused = |at_ms: u64| Stamped {
        at_ms,
        event: Event::OutboxRefused {
            call_sid: "CA2".into(),
            reason: "write-refused".into(),
        },
    };
    windows.record(&Stamped {
        at_ms: later,
        event: Event::OutboxWritten {
            call_sid: "CA1".into(),
            attempts: 10,
        },
    });
    for hours in 0..48 {
        windows.record(&refused(later + hours * hour));
        assert_eq!(
            keys(&mut windows, later + hours * hour + hour - 1),
            vec!["records-refused"]
        );
    }
    let last_refusal = later + 47 * hour;
    assert_eq!(
        keys(&mut windows, last_refusal + REFUSED_UNHEARD_MS),
        vec!["records-refused"]
    );
    assert!(keys(&mut windows, last_refusal + REFUSED_UNHEARD_MS + 1).is_empty());
    assert!(windows.refused.is_empty() && windows.heard.is_empty());
    // A week's outage is still an outage: a record reported waiting for eight days alerts.
    let eight_days = 8 * 86_400_000;
    windows.record(&Stamped {
        at_ms: NOW + eight_days,
        event: Event::OutboxRetry {
            call_sid: "CA3".into(),
            attempt: 9_000,
            backlog_age_seconds: eight_days / 1_000,
        },
    });
    assert_eq!(
        keys(&mut windows, NOW + eight_days + 1_000),
        vec!["outbox-backlog"]
    );
}

#[test]
fn a_refused_record_is_its_own_condition_not_the_outage_backlog() {
    let cfg = config();
    let mut windows = Windows::default();
    let stamp = |at_ms, event| Stamped { at_ms, event };
    let retry = |call_sid: &str| Event::OutboxRetry {
        call_sid: call_sid.into(),
        attempt: 3,
        backlog_age_seconds: 900,
    };
    let refused = |call_sid: &str| Event::OutboxRefused {
        call_sid: call_sid.into(),
        reason: "write-refused".into(),
    };
    let keys = |windows: &Windows| -> Vec<String> {
        conditions(windows, &cfg, NOW)
            .iter()
            .map(Condition::key)
            .collect()
    };
    // Retried first (Medplum looked down), then refused: the backlog alert gives way.
    windows.record(&stamp(NOW, retry("CA1")));
    assert_eq!(keys(&windows), vec!["outbox-backlog"]);
    windows.record(&stamp(NOW, refused("CA1")));
    assert_eq!(keys(&windows), vec!["records-refused"]);
    windows.record(&stamp(NOW, refused("CA2")));
    let found = conditions(&windows, &cfg, NOW);
    assert_eq!(found, vec![Condition::RecordsRefused { count: 2 }]);
    assert!(found[0]
        .describe(&cfg)
        .starts_with("Medplum refused 2 call record(s)"));
    // A refused record that later fails for an outage is backlog again; a written one is neither.
    windows.record(&stamp(NOW, retry("CA2")));
    windows.record(&stamp(
        NOW,
        Event::OutboxWritten {
            call_sid: "CA1".into(),
            attempts: 4,
        },
    ));
    assert_eq!(keys(&windows), vec!["outbox-backlog"]);
    windows.record(&stamp(
        NOW,
        Event::OutboxWritten {
            call_sid: "CA2".into(),
            attempts: 5,
        },
    ));
    assert!(keys(&windows).is_empty());
    // Refused every hour for good (an Appointment deleted on purpose): the alert leaves a week
    // after the first refusal, not a week after the last.
    let hour = 3_600_000;
    for hours in 0..=24 * 7 {
        windows.record(&stamp(NOW + hours * hour, refused("CA3")));
    }
    let week_later = NOW + 7 * 24 * hour + 1;
    windows.prune(week_later, 15 * 60_000);
    assert!(conditions(&windows, &cfg, week_later).is_empty());
    // Windows saved before refusals existed still load.
    let saved: Windows = serde_json::from_str(
        r#"{"outcomes":[],"forgedAtMs":[],"exhaustedAtMs":[],"backlog":{"CA9":5}}"#,
    )
    .unwrap_or_default();
    assert_eq!(saved.backlog.get("CA9"), Some(&5));
    assert!(saved.refused.is_empty());
    // Refusals are counted in Datadog by reason, with nothing else.
    let sanitized = refused("CA1 +447700900123").sanitized();
    assert_eq!(
        sanitized,
        Event::OutboxRefused {
            call_sid: "other".into(),
            reason: "write-refused".into()
        }
    );
}

#[test]
fn datadog_and_slack_payloads_are_tagged_and_free_of_patient_data() {
    let events = vec![
        outcome(1_700_000_000_000, CallStatus::Busy, "+447700900001"),
        Stamped {
            at_ms: 1_700_000_001_000,
            event: Event::TokenRefused {
                reason: "permission_missing".into(),
            },
        },
        Stamped {
            at_ms: 1_700_000_002_000,
            event: Event::ManualFallback {
                reason: "Patient +447700900123".into(),
            },
        },
        Stamped {
            at_ms: 1_700_000_003_000,
            event: Event::OutboxRetry {
                call_sid: "CA0123456789abcdef0123456789abcdef".into(),
                attempt: 2,
                backlog_age_seconds: 30,
            },
        },
    ];
    let series = datadog_series(&events, "local");
    let list = series["series"].as_array().expect("series");
    assert_eq!(list[0]["metric"], "clinician_calls.call.outcome");
    assert_eq!(list[0]["type"], 1);
    assert_eq!(list[0]["points"][0]["timestamp"], 1_700_000_000);
    let tags: Vec<&str> = list[0]["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tags.contains(&"status:busy")
            && tags.contains(&"pool_number_ending:0001")
            && tags.contains(&"env:local")
    );
    assert!(
        !tags.iter().any(|tag| tag.contains("447700900001")),
        "no whole pool number: {tags:?}"
    );
    assert!(
        list.iter()
            .all(|s| s["metric"] != "clinician_calls.call.duration_seconds"),
        "durations go as a distribution, not a series"
    );
    assert!(list.iter().any(
        |s| s["metric"] == "clinician_calls.manual_fallback" && s["tags"][1] == "reason:other"
    ));
    assert!(list
        .iter()
        .any(|s| s["metric"] == "clinician_calls.outbox.backlog_age_seconds" && s["type"] == 3));
    // Same series, same second: one point, summed (Datadog would keep only the last of several).
    let burst: Vec<Stamped> = (0..3)
        .map(|i| Stamped {
            at_ms: 1_700_000_005_000 + i * 300,
            event: Event::SignatureRejected {
                route: "voice".into(),
            },
        })
        .chain(std::iter::once(Stamped {
            at_ms: 1_700_000_006_000,
            event: Event::SignatureRejected {
                route: "voice".into(),
            },
        }))
        .collect();
    let burst_series = datadog_series(&burst, "local");
    let points: Vec<(u64, f64)> = burst_series["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|s| {
            (
                s["points"][0]["timestamp"].as_u64().unwrap_or(0),
                s["points"][0]["value"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    assert_eq!(points, vec![(1_700_000_005, 3.0), (1_700_000_006, 1.0)]);
    let logs = datadog_logs(&events, "local", "clinician-calls");
    let text = logs.to_string();
    assert!(!text.contains("900123"), "{text}");
    assert!(
        !text.contains("900001"),
        "the pool number only by its end: {text}"
    );
    assert_eq!(logs[0]["event"]["poolNumber"], "0001");
    assert_eq!(logs.as_array().map(Vec::len), Some(4));
    let slack = Notification::Resolved {
        key: "k".into(),
        text: "x 07700 900123".into(),
    }
    .slack_body("staging");
    assert_eq!(
        slack["text"],
        ":white_check_mark: [staging] Resolved: x [number]"
    );
}

#[test]
fn call_durations_are_a_distribution_keeping_every_call_of_a_second() {
    let ended = |at_ms, seconds| Stamped {
        at_ms,
        event: Event::CallOutcome {
            status: CallStatus::Completed,
            duration_seconds: seconds,
            pool_number: Some("+447700900001".into()),
            clinician_key: None,
            error_code: None,
            direction: "outbound-browser".into(),
        },
    };
    // Two calls of the same tags ending in one second, one in the next; and no outcome at all.
    let events = [
        ended(1_700_000_000_100, 125),
        ended(1_700_000_000_900, 200),
        ended(1_700_000_001_000, 125),
    ];
    let body = datadog_distributions(&events, "local").expect("durations");
    let series = body["series"].as_array().expect("series");
    let points: Vec<(&str, &Value)> = series
        .iter()
        .map(|s| (s["metric"].as_str().unwrap_or(""), &s["points"][0]))
        .collect();
    assert_eq!(
        points,
        vec![
            (
                "clinician_calls.call.duration_seconds",
                &json!([1_700_000_000_u64, [125.0, 200.0]])
            ),
            (
                "clinician_calls.call.duration_seconds",
                &json!([1_700_000_001_u64, [125.0]])
            ),
        ]
    );
    assert!(series.iter().all(|s| s["type"] == "distribution"));
    assert!(series[0]["tags"]
        .as_array()
        .is_some_and(|tags| tags.contains(&json!("pool_number_ending:0001"))));
    let no_calls = [Stamped {
        at_ms: 1_700_000_000_000,
        event: Event::PoolExhausted,
    }];
    assert_eq!(datadog_distributions(&no_calls, "local"), None);
}

#[test]
fn call_stats_per_number_and_day() {
    let at = 1_795_600_000; // 2026-11-25
    let records = vec![
        OutcomeRecord {
            at_unix: at,
            status: CallStatus::Completed,
            duration_seconds: 60,
            pool_number: Some("+447700900001".into()),
        },
        OutcomeRecord {
            at_unix: at + 10,
            status: CallStatus::Completed,
            duration_seconds: 180,
            pool_number: Some("+447700900001".into()),
        },
        OutcomeRecord {
            at_unix: at + 20,
            status: CallStatus::Busy,
            duration_seconds: 0,
            pool_number: Some("+447700900002".into()),
        },
        OutcomeRecord {
            at_unix: at + 86_400,
            status: CallStatus::NoAnswer,
            duration_seconds: 0,
            pool_number: None,
        },
    ];
    let stats = call_stats(&records);
    assert_eq!(stats["overall"]["calls"], 4);
    assert_eq!(stats["overall"]["answered"], 2);
    assert_eq!(stats["overall"]["answerRate"], 0.5);
    assert_eq!(stats["overall"]["medianDurationSeconds"], 120);
    assert_eq!(stats["overall"]["outcomes"]["busy"], 1);
    let per_number = stats["perNumber"].as_array().expect("per number");
    assert_eq!(per_number.len(), 3);
    assert_eq!(per_number[0]["poolNumber"], "+447700900001");
    assert_eq!(per_number[0]["answerRate"], 1.0);
    let per_day = stats["perDay"].as_array().expect("per day");
    assert_eq!(per_day.len(), 2);
    assert_eq!(per_day[0]["date"], "2026-11-25");
    assert_eq!(per_day[1]["calls"], 1);
    assert_eq!(call_stats(&[])["overall"]["answerRate"], Value::Null);
}
