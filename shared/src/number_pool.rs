//! Choosing a caller-ID number from the shared pool: same country as the destination first, the
//! patient's sticky number if it is free, otherwise the least recently used free number. A number
//! is leased to one live call at a time; a lease ends on the call's terminal status or expires.

use serde::{Deserialize, Serialize};

use crate::dial_policy::{country_of, LIMIT_WINDOW_MS};
use crate::ids::E164;

/// Whether a pool number may be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NumberStatus {
    Active,
    /// Finishes its current lease, then is retired; never chosen again.
    Retiring,
    Retired,
}

/// A live call holding a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub call_sid: String,
    pub expires_at_ms: i64,
}

/// One number in the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolNumber {
    pub number: E164,
    pub status: NumberStatus,
    pub last_used_ms: i64,
    pub lease: Option<Lease>,
}

impl PoolNumber {
    /// Not leased, or its lease has expired.
    pub fn is_free(&self, now_ms: i64) -> bool {
        self.lease
            .as_ref()
            .is_none_or(|lease| lease.expires_at_ms <= now_ms)
    }
}

/// What a call asks of the pool.
#[derive(Debug, Clone, Copy)]
pub struct LeaseRequest<'a> {
    pub call_sid: &'a str,
    pub destination: &'a E164,
    /// The number that last called this patient, if remembered.
    pub sticky: Option<&'a E164>,
    pub now_ms: i64,
    /// How long the lease lasts without a release ([`LEASE_MS`] unless configured).
    pub lease_ms: i64,
}

/// How long a lease lasts unless released (leases are not renewed): longer than any call can
/// last, which Twilio ends after 4 h (the `<Dial>` time limit's default), plus its 30 s of
/// ringing and a margin.
pub const LEASE_MS: i64 = (4 * 60 * 60 + 5 * 60) * 1000;

/// How long the number that last called a patient stays preferred for them, and how long a
/// patient calling that number back is put through to the clinician who called.
pub const STICKINESS_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// How long the pool keeps a call in its log: as long as something reads it (call-backs within
/// [`STICKINESS_MS`], the rolling hour of the misuse limits) and no longer, since the log holds
/// patients' numbers. (The check that refuses a replayed voice request reads the pool's
/// `placed_calls` instead, which holds no numbers and is kept.)
pub const CALL_LOG_RETENTION_MS: i64 = if STICKINESS_MS > LIMIT_WINDOW_MS {
    STICKINESS_MS
} else {
    LIMIT_WINDOW_MS
};

/// The least time between two deletions of expired rows (each runs with a lease).
pub const PRUNE_EVERY_MS: i64 = 60 * 60 * 1000;

/// What the pool deletes when it prunes at some moment: call-log rows and stickiness rows
/// stamped at or before these instants, which nothing reads any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub call_log_until_ms: i64,
    pub stickiness_until_ms: i64,
}

/// Whether to prune at `now_ms`, having last pruned at `last_pruned_ms` (`None`: not yet since
/// the object started), and what: at most once per [`PRUNE_EVERY_MS`].
pub fn prune_due(now_ms: i64, last_pruned_ms: Option<i64>) -> Option<Expired> {
    let due = last_pruned_ms.is_none_or(|last| now_ms.saturating_sub(last) >= PRUNE_EVERY_MS);
    due.then(|| Expired {
        call_log_until_ms: now_ms.saturating_sub(CALL_LOG_RETENTION_MS),
        stickiness_until_ms: now_ms.saturating_sub(STICKINESS_MS),
    })
}

fn same_country(a: &E164, b: &E164) -> bool {
    match (country_of(a), country_of(b)) {
        (Some(x), Some(y)) => x.iso == y.iso,
        _ => false,
    }
}

/// The index of the number to lease, or `None` when no line is free. A call that already holds
/// a lease gets the same number again (webhook retries are idempotent).
pub fn choose(numbers: &[PoolNumber], request: &LeaseRequest<'_>) -> Option<usize> {
    if let Some(held) = held_by(numbers, request.call_sid, request.now_ms) {
        return Some(held);
    }
    let free: Vec<usize> = (0..numbers.len())
        .filter(|&i| {
            numbers[i].status == NumberStatus::Active && numbers[i].is_free(request.now_ms)
        })
        .collect();
    let local: Vec<usize> = free
        .iter()
        .copied()
        .filter(|&i| same_country(&numbers[i].number, request.destination))
        .collect();
    let candidates = if local.is_empty() { free } else { local };
    if let Some(sticky) = request.sticky {
        if let Some(&i) = candidates.iter().find(|&&i| &numbers[i].number == sticky) {
            return Some(i);
        }
    }
    candidates
        .into_iter()
        .min_by_key(|&i| (numbers[i].last_used_ms, numbers[i].number.clone()))
}

/// The number whose unexpired lease this call holds, if any.
pub fn held_by(numbers: &[PoolNumber], call_sid: &str, now_ms: i64) -> Option<usize> {
    numbers.iter().position(|n| {
        n.lease
            .as_ref()
            .is_some_and(|l| l.call_sid == call_sid && l.expires_at_ms > now_ms)
    })
}

/// Leases the chosen number to the call, in place. Returns the number leased.
pub fn lease(numbers: &mut [PoolNumber], request: &LeaseRequest<'_>) -> Option<E164> {
    let index = choose(numbers, request)?;
    let chosen = &mut numbers[index];
    chosen.last_used_ms = request.now_ms;
    chosen.lease = Some(Lease {
        call_sid: request.call_sid.to_owned(),
        expires_at_ms: request.now_ms.saturating_add(request.lease_ms),
    });
    Some(chosen.number.clone())
}

/// Ends the call's lease; a retiring number becomes retired. Returns whether a lease ended.
pub fn release(numbers: &mut [PoolNumber], call_sid: &str) -> bool {
    let mut released = false;
    for number in numbers.iter_mut() {
        if number
            .lease
            .as_ref()
            .is_some_and(|l| l.call_sid == call_sid)
        {
            number.lease = None;
            if number.status == NumberStatus::Retiring {
                number.status = NumberStatus::Retired;
            }
            released = true;
        }
    }
    released
}

/// Retires the retiring numbers whose lease has ended without a release (its call's release was
/// lost, or came after the lease expired): a lease outlives any call, so the call is over.
/// Returns the numbers retired, for the audit.
pub fn retire_finished(numbers: &mut [PoolNumber], now_ms: i64) -> Vec<E164> {
    numbers
        .iter_mut()
        .filter(|n| n.status == NumberStatus::Retiring && n.is_free(now_ms))
        .map(|n| {
            n.status = NumberStatus::Retired;
            n.lease = None;
            n.number.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY_MS: i64 = 24 * 60 * 60 * 1000;

    #[test]
    fn prunes_at_most_hourly_and_only_what_nothing_reads() {
        let now = 100 * DAY_MS;
        let expired = Some(Expired {
            call_log_until_ms: 70 * DAY_MS,
            stickiness_until_ms: 70 * DAY_MS,
        });
        let table: &[(Option<i64>, Option<Expired>)] = &[
            (None, expired),
            (Some(now - PRUNE_EVERY_MS), expired),
            (Some(now - 2 * PRUNE_EVERY_MS), expired),
            (Some(now - PRUNE_EVERY_MS + 1), None),
            (Some(now), None),
            // A clock that stepped back does not prune again until an hour past the last time.
            (Some(now + 5_000), None),
        ];
        for &(last_pruned, expected) in table {
            assert_eq!(
                prune_due(now, last_pruned),
                expected,
                "last pruned {last_pruned:?}"
            );
        }
    }

    proptest! {
        /// A row that a reader can still see (a call-back route or sticky number within the
        /// stickiness period, a call within the limits' hour) is never deleted; every older
        /// call-log row goes once the stickiness period has passed.
        #[test]
        fn pruning_never_deletes_a_row_still_read(now in 0i64..=i64::MAX / 2, age in 0i64..=200 * DAY_MS) {
            let expired = prune_due(now, None).unwrap();
            let stamped = now - age;
            let read_by_routing_or_stickiness = stamped > now - STICKINESS_MS;
            let read_by_limits = stamped > now - LIMIT_WINDOW_MS;
            if read_by_routing_or_stickiness || read_by_limits {
                prop_assert!(stamped > expired.call_log_until_ms);
            } else {
                prop_assert!(stamped <= expired.call_log_until_ms);
            }
            prop_assert_eq!(stamped > expired.stickiness_until_ms, read_by_routing_or_stickiness);
        }
    }

    fn e164(s: &str) -> E164 {
        E164::parse(s).unwrap()
    }

    fn pool(numbers: &[(&str, i64)]) -> Vec<PoolNumber> {
        numbers
            .iter()
            .map(|(n, used)| PoolNumber {
                number: e164(n),
                status: NumberStatus::Active,
                last_used_ms: *used,
                lease: None,
            })
            .collect()
    }

    fn request<'a>(
        sid: &'a str,
        destination: &'a E164,
        sticky: Option<&'a E164>,
        now: i64,
    ) -> LeaseRequest<'a> {
        LeaseRequest {
            call_sid: sid,
            destination,
            sticky,
            now_ms: now,
            lease_ms: LEASE_MS,
        }
    }

    #[test]
    fn least_recently_used_same_country_first() {
        let mut numbers = pool(&[
            ("+447700900001", 50),
            ("+447700900002", 10),
            ("+12025550100", 0),
            ("+447700900003", 30),
        ]);
        let uk = e164("+447700900123");
        assert_eq!(
            lease(&mut numbers, &request("CA1", &uk, None, 100)),
            Some(e164("+447700900002"))
        );
        assert_eq!(
            lease(&mut numbers, &request("CA2", &uk, None, 101)),
            Some(e164("+447700900003"))
        );
        assert_eq!(
            lease(&mut numbers, &request("CA3", &uk, None, 102)),
            Some(e164("+447700900001"))
        );
        // All UK numbers busy: another country's free number rather than no line.
        assert_eq!(
            lease(&mut numbers, &request("CA4", &uk, None, 103)),
            Some(e164("+12025550100"))
        );
        assert_eq!(lease(&mut numbers, &request("CA5", &uk, None, 104)), None);
        assert!(release(&mut numbers, "CA2"));
        assert_eq!(
            lease(&mut numbers, &request("CA5", &uk, None, 105)),
            Some(e164("+447700900003"))
        );
    }

    #[test]
    fn sticky_number_when_free_and_retries_are_idempotent() {
        let mut numbers = pool(&[("+447700900001", 0), ("+447700900002", 99)]);
        let patient = e164("+447700900123");
        let sticky = e164("+447700900002");
        assert_eq!(
            lease(&mut numbers, &request("CA1", &patient, Some(&sticky), 100)),
            Some(sticky.clone())
        );
        assert_eq!(
            lease(&mut numbers, &request("CA1", &patient, Some(&sticky), 101)),
            Some(sticky.clone()),
            "same call, same number"
        );
        assert_eq!(
            lease(&mut numbers, &request("CA2", &patient, Some(&sticky), 102)),
            Some(e164("+447700900001")),
            "sticky is busy"
        );
    }

    #[test]
    fn expired_leases_free_the_number_and_retiring_numbers_are_never_chosen() {
        let mut numbers = pool(&[("+447700900001", 0)]);
        let patient = e164("+447700900123");
        assert!(lease(&mut numbers, &request("CA1", &patient, None, 0)).is_some());
        assert_eq!(
            lease(&mut numbers, &request("CA2", &patient, None, LEASE_MS - 1)),
            None
        );
        assert!(
            lease(&mut numbers, &request("CA2", &patient, None, LEASE_MS)).is_some(),
            "lease expired"
        );
        numbers[0].status = NumberStatus::Retiring;
        assert!(release(&mut numbers, "CA2"));
        assert_eq!(numbers[0].status, NumberStatus::Retired);
        assert_eq!(
            lease(&mut numbers, &request("CA3", &patient, None, LEASE_MS + 1)),
            None
        );
    }

    #[test]
    fn a_retiring_number_is_retired_once_its_lease_has_ended() {
        let mut numbers = pool(&[("+447700900001", 0), ("+447700900002", 0)]);
        let patient = e164("+447700900123");
        let first = lease(&mut numbers, &request("CA1", &patient, None, 0));
        assert_eq!(first, Some(e164("+447700900001")));
        numbers[0].status = NumberStatus::Retiring;
        // A retiring number that was never leased is retired too.
        numbers[1].status = NumberStatus::Retiring;
        assert_eq!(
            retire_finished(&mut numbers, 1),
            vec![e164("+447700900002")]
        );
        assert_eq!(
            numbers[0].status,
            NumberStatus::Retiring,
            "its call may be live"
        );
        assert_eq!(
            retire_finished(&mut numbers, LEASE_MS - 1),
            Vec::<E164>::new()
        );
        assert_eq!(
            retire_finished(&mut numbers, LEASE_MS),
            vec![e164("+447700900001")]
        );
        assert_eq!(numbers[0].status, NumberStatus::Retired);
        assert_eq!(numbers[0].lease, None);
        assert_eq!(
            retire_finished(&mut numbers, LEASE_MS + 1),
            Vec::<E164>::new(),
            "once"
        );
        assert!(
            !release(&mut numbers, "CA1"),
            "a late release finds nothing to end"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Lease(u8),
        Release(u8),
        Advance(i64),
    }

    proptest! {
        /// Whatever the sequence of leases (repeated ones included), releases and time passing,
        /// no live call holds two numbers: a repeated lease keeps its one line. (That no number
        /// is held by two calls is `a_live_lease_is_never_taken_…` below: here a number holds
        /// one lease by construction.)
        #[test]
        fn a_call_holds_at_most_one_line(ops in proptest::collection::vec(prop_oneof![
            (0u8..12).prop_map(Op::Lease),
            (0u8..12).prop_map(Op::Release),
            (0i64..LEASE_MS / 2).prop_map(Op::Advance),
        ], 1..200)) {
            let mut numbers = pool(&[("+447700900001", 0), ("+447700900002", 0), ("+447700900003", 0), ("+12025550100", 0)]);
            let destination = e164("+447700900123");
            let mut now = 1_000;
            for op in ops {
                match op {
                    Op::Lease(call) => { lease(&mut numbers, &request(&format!("CA{call}"), &destination, None, now)); }
                    Op::Release(call) => { release(&mut numbers, &format!("CA{call}")); }
                    Op::Advance(ms) => now += ms,
                }
                let live: Vec<&str> = numbers.iter().filter(|n| !n.is_free(now)).filter_map(|n| n.lease.as_ref().map(|l| l.call_sid.as_str())).collect();
                let mut distinct = live.clone();
                distinct.sort_unstable();
                distinct.dedup();
                prop_assert_eq!(distinct.len(), live.len(), "a call holds two numbers: {:?}", live);
            }
        }

        /// Among free same-country numbers, the one chosen is never more recently used than another.
        #[test]
        fn choice_is_least_recently_used(used in proptest::collection::vec(0i64..1000, 1..6)) {
            let names = ["+447700900001", "+447700900002", "+447700900003", "+447700900004", "+447700900005", "+447700900006"];
            let numbers = pool(&names.iter().zip(&used).map(|(n, u)| (*n, *u)).collect::<Vec<_>>());
            let destination = e164("+447700900123");
            let chosen = choose(&numbers, &request("CA1", &destination, None, 5_000)).unwrap();
            prop_assert!(numbers.iter().all(|n| n.last_used_ms >= numbers[chosen].last_used_ms));
        }

        /// A live lease is never taken over by another call (only its own release or expiry ends
        /// it), and a call is refused a line only when every active number is busy. Mixed
        /// countries, sticky numbers and retiring numbers included.
        #[test]
        fn a_live_lease_is_never_taken_and_no_line_is_refused_while_one_is_free(
            ops in proptest::collection::vec(prop_oneof![
                (0u8..10, any::<bool>(), any::<bool>()).prop_map(|(call, abroad, sticky)| PoolOp::Lease { call, abroad, sticky }),
                (0u8..10).prop_map(PoolOp::Release),
                (0i64..LEASE_MS / 3).prop_map(PoolOp::Advance),
                (0usize..5).prop_map(PoolOp::Retire),
            ], 1..150),
        ) {
            let mut numbers = pool(&[("+447700900001", 0), ("+447700900002", 5), ("+447700900003", 9), ("+12025550100", 0), ("+12025550101", 3)]);
            let home = e164("+447700900123");
            let abroad = e164("+12025550143");
            let sticky = e164("+447700900002");
            let mut now = 1_000;
            for op in ops {
                let before = numbers.clone();
                match op {
                    PoolOp::Lease { call, abroad: far, sticky: use_sticky } => {
                        let sid = format!("CA{call}");
                        let destination = if far { &abroad } else { &home };
                        let held_before = before.iter().position(|n| n.lease.as_ref().is_some_and(|l| l.call_sid == sid && l.expires_at_ms > now));
                        let leased = lease(&mut numbers, &request(&sid, destination, use_sticky.then_some(&sticky), now));
                        match &leased {
                            Some(number) => {
                                let index = numbers.iter().position(|n| &n.number == number).unwrap();
                                prop_assert_eq!(numbers[index].lease.as_ref().map(|l| l.call_sid.as_str()), Some(sid.as_str()));
                                if let Some(held) = held_before {
                                    prop_assert_eq!(index, held, "a retry gets the number it holds");
                                } else {
                                    prop_assert!(before[index].is_free(now) && before[index].status == NumberStatus::Active);
                                }
                            }
                            None => prop_assert!(
                                before.iter().all(|n| n.status != NumberStatus::Active || !n.is_free(now)),
                                "refused while a line was free"
                            ),
                        }
                    }
                    PoolOp::Release(call) => { release(&mut numbers, &format!("CA{call}")); }
                    PoolOp::Advance(ms) => now += ms,
                    PoolOp::Retire(index) => {
                        if numbers[index].status == NumberStatus::Active {
                            numbers[index].status = NumberStatus::Retiring;
                        }
                    }
                }
                let released = match &op { PoolOp::Release(call) => Some(format!("CA{call}")), _ => None };
                for (old, new) in before.iter().zip(&numbers) {
                    if let Some(lease) = old.lease.as_ref().filter(|l| l.expires_at_ms > now) {
                        if released.as_deref() != Some(lease.call_sid.as_str()) {
                            prop_assert_eq!(new.lease.as_ref().map(|l| l.call_sid.as_str()), Some(lease.call_sid.as_str()), "a live lease was taken");
                        }
                    }
                }
            }
        }

        /// In any pool state (leases live and expired, retiring numbers, two countries), the
        /// chosen number is active and free, of the destination's country when one such is free,
        /// the sticky number when that qualifies, and otherwise the least recently used of them.
        #[test]
        fn the_choice_is_free_local_sticky_then_least_recently_used(
            state in proptest::collection::vec((0i64..50, proptest::option::of(0i64..200), 0u8..3), 6),
            sticky_index in proptest::option::of(0usize..6),
            abroad in any::<bool>(),
        ) {
            let names = ["+447700900001", "+447700900002", "+447700900003", "+12025550100", "+12025550101", "+12025550102"];
            let now = 100;
            let numbers: Vec<PoolNumber> = names.iter().zip(&state).enumerate().map(|(i, (name, (used, lease_until, status)))| PoolNumber {
                number: e164(name),
                status: [NumberStatus::Active, NumberStatus::Active, NumberStatus::Retiring][usize::from(*status)],
                last_used_ms: *used,
                lease: lease_until.map(|until| Lease { call_sid: format!("CA-other-{i}"), expires_at_ms: until }),
            }).collect();
            let destination = e164(if abroad { "+12025550143" } else { "+447700900123" });
            let sticky = sticky_index.map(|i| numbers[i].number.clone());
            let eligible: Vec<usize> = (0..numbers.len()).filter(|&i| numbers[i].status == NumberStatus::Active && numbers[i].is_free(now)).collect();
            let local: Vec<usize> = eligible.iter().copied().filter(|&i| country_of(&numbers[i].number) == country_of(&destination)).collect();
            let class = if local.is_empty() { eligible } else { local };
            match choose(&numbers, &request("CA-new", &destination, sticky.as_ref(), now)) {
                None => prop_assert!(class.is_empty()),
                Some(chosen) => {
                    prop_assert!(class.contains(&chosen), "chose {} outside {:?}", chosen, class);
                    match sticky.as_ref().and_then(|s| class.iter().find(|&&i| &numbers[i].number == s)) {
                        Some(&sticky_free) => prop_assert_eq!(chosen, sticky_free),
                        None => prop_assert!(class.iter().all(|&i| numbers[i].last_used_ms >= numbers[chosen].last_used_ms)),
                    }
                }
            }
        }
    }

    #[derive(Debug, Clone)]
    enum PoolOp {
        Lease {
            call: u8,
            abroad: bool,
            sticky: bool,
        },
        Release(u8),
        Advance(i64),
        Retire(usize),
    }
}
