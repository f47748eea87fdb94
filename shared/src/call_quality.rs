//! Plain-language call-quality warnings from WebRTC statistics: packet loss, jitter, round-trip
//! time and a silent microphone. The browser module samples `getStats` about once a second and
//! feeds [`Sample`]s in; a warning shows after two bad samples in a row and clears after two good
//! ones, so one noisy second neither raises nor clears it.

/// One getStats reading (cumulative counters, as the browser reports them).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    /// Inbound audio RTP: packets received and lost so far.
    pub packets_received: u64,
    pub packets_lost: u64,
    /// Inbound jitter in seconds.
    pub jitter_seconds: f64,
    /// The selected candidate pair's current round-trip time in seconds, when known.
    pub round_trip_seconds: Option<f64>,
    /// The microphone's audio level (0..1) as sent, when known.
    pub microphone_level: Option<f64>,
    /// The clinician muted the microphone on purpose.
    pub muted: bool,
}

/// A condition worth telling the clinician about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Warning {
    PacketLoss,
    Jitter,
    RoundTrip,
    SilentMicrophone,
}

impl Warning {
    pub const ALL: [Warning; 4] = [
        Self::PacketLoss,
        Self::Jitter,
        Self::RoundTrip,
        Self::SilentMicrophone,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::PacketLoss => "packet-loss",
            Self::Jitter => "jitter",
            Self::RoundTrip => "round-trip",
            Self::SilentMicrophone => "silent-microphone",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::PacketLoss => "Poor connection: parts of the patient's voice are being lost.",
            Self::Jitter => "Unsteady connection: the audio may sound choppy.",
            Self::RoundTrip => "Slow connection: expect a delay before the patient hears you.",
            Self::SilentMicrophone => {
                "Your microphone is sending silence. Check it is plugged in and not muted on the headset."
            }
        }
    }
}

/// Loss above this share of expected packets (over the last interval) is a problem.
pub const LOSS_LIMIT: f64 = 0.05;
/// Jitter above 30 ms is audible.
pub const JITTER_LIMIT_SECONDS: f64 = 0.030;
/// A round trip above 400 ms makes conversation awkward.
pub const ROUND_TRIP_LIMIT_SECONDS: f64 = 0.400;
/// Below this level the microphone is silent (Chromium reports 0..1).
pub const SILENCE_LEVEL: f64 = 0.0005;
/// Consecutive bad samples (one a second) needed to raise a warning.
pub const SAMPLES_TO_RAISE: u8 = 2;
/// Consecutive good samples needed to clear one: longer than to raise, so that a connection on
/// the edge does not make the warning come and go (and be read out) every few seconds.
pub const SAMPLES_TO_CLEAR: u8 = 10;
/// A silent microphone is reported after this many consecutive silent samples (people pause).
pub const SILENT_SAMPLES: u8 = 5;

#[derive(Debug, Clone, Copy, Default)]
struct Track {
    bad_run: u8,
    good_run: u8,
    active: bool,
}

impl Track {
    fn observe(&mut self, bad: bool, needed: u8) {
        if bad {
            self.bad_run = self.bad_run.saturating_add(1);
            self.good_run = 0;
            if self.bad_run >= needed {
                self.active = true;
            }
        } else {
            self.good_run = self.good_run.saturating_add(1);
            self.bad_run = 0;
            if self.good_run >= SAMPLES_TO_CLEAR {
                self.active = false;
            }
        }
    }
}

/// The warnings' state across samples.
#[derive(Debug, Clone, Default)]
pub struct Monitor {
    last: Option<Sample>,
    tracks: [Track; 4],
}

impl Monitor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a sample and returns the warnings now active, most serious first.
    pub fn observe(&mut self, sample: Sample) -> Vec<Warning> {
        let loss = match self.last {
            Some(last) => {
                let received = sample
                    .packets_received
                    .saturating_sub(last.packets_received);
                let lost = sample.packets_lost.saturating_sub(last.packets_lost);
                let expected = received.saturating_add(lost);
                expected > 0 && (lost as f64) / (expected as f64) > LOSS_LIMIT
            }
            None => false,
        };
        self.last = Some(sample);
        let bad = [
            (loss, SAMPLES_TO_RAISE),
            (
                sample.jitter_seconds > JITTER_LIMIT_SECONDS,
                SAMPLES_TO_RAISE,
            ),
            (
                sample
                    .round_trip_seconds
                    .is_some_and(|rtt| rtt > ROUND_TRIP_LIMIT_SECONDS),
                SAMPLES_TO_RAISE,
            ),
            (
                !sample.muted && sample.microphone_level.is_some_and(|l| l < SILENCE_LEVEL),
                SILENT_SAMPLES,
            ),
        ];
        for (track, (is_bad, needed)) in self.tracks.iter_mut().zip(bad) {
            track.observe(is_bad, needed);
        }
        self.active()
    }

    /// The warnings currently raised.
    pub fn active(&self) -> Vec<Warning> {
        Warning::ALL
            .into_iter()
            .zip(self.tracks.iter())
            .filter(|(_, track)| track.active)
            .map(|(warning, _)| warning)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(received: u64, lost: u64, jitter: f64, rtt: f64, level: f64) -> Sample {
        Sample {
            packets_received: received,
            packets_lost: lost,
            jitter_seconds: jitter,
            round_trip_seconds: Some(rtt),
            microphone_level: Some(level),
            muted: false,
        }
    }

    #[test]
    fn warnings_rise_after_two_bad_samples_and_clear_after_ten_good() {
        // (samples, warnings after the last one)
        let good = |n: u64| sample(n * 50, 0, 0.005, 0.05, 0.2);
        let table: Vec<(Vec<Sample>, Vec<Warning>)> = vec![
            (vec![good(1), good(2), good(3)], vec![]),
            // 10 % loss in one interval only: not yet.
            (vec![good(1), sample(95, 5, 0.005, 0.05, 0.2)], vec![]),
            (
                vec![
                    good(1),
                    sample(95, 5, 0.005, 0.05, 0.2),
                    sample(140, 10, 0.005, 0.05, 0.2),
                ],
                vec![Warning::PacketLoss],
            ),
            (
                vec![
                    sample(50, 0, 0.05, 0.05, 0.2),
                    sample(100, 0, 0.05, 0.05, 0.2),
                ],
                vec![Warning::Jitter],
            ),
            (
                vec![sample(50, 0, 0.0, 0.6, 0.2), sample(100, 0, 0.0, 0.6, 0.2)],
                vec![Warning::RoundTrip],
            ),
            (
                [
                    sample(50, 0, 0.05, 0.05, 0.2),
                    sample(100, 0, 0.05, 0.05, 0.2),
                ]
                .into_iter()
                .chain((3..12).map(good))
                .collect(),
                vec![Warning::Jitter],
            ),
            (
                [
                    sample(50, 0, 0.05, 0.05, 0.2),
                    sample(100, 0, 0.05, 0.05, 0.2),
                ]
                .into_iter()
                .chain((3..13).map(good))
                .collect(),
                vec![],
            ),
            // One bad sample in the good run starts the count again.
            (
                [
                    sample(50, 0, 0.05, 0.05, 0.2),
                    sample(100, 0, 0.05, 0.05, 0.2),
                ]
                .into_iter()
                .chain((3..8).map(good))
                .chain([sample(400, 0, 0.05, 0.05, 0.2)])
                .chain((9..14).map(good))
                .collect(),
                vec![Warning::Jitter],
            ),
            (
                (1..=4).map(|n| sample(n * 50, 0, 0.0, 0.05, 0.0)).collect(),
                vec![],
            ),
            (
                (1..=5).map(|n| sample(n * 50, 0, 0.0, 0.05, 0.0)).collect(),
                vec![Warning::SilentMicrophone],
            ),
        ];
        for (samples, expected) in table {
            let mut monitor = Monitor::new();
            let mut active = Vec::new();
            for s in &samples {
                active = monitor.observe(*s);
            }
            assert_eq!(active, expected, "{samples:?}");
        }
    }

    #[test]
    fn a_muted_microphone_is_not_silent_and_unknown_figures_raise_nothing() {
        let mut monitor = Monitor::new();
        for n in 1..10 {
            let mut s = sample(n * 50, 0, 0.0, 0.05, 0.0);
            s.muted = true;
            assert!(monitor.observe(s).is_empty());
        }
        let mut monitor = Monitor::new();
        for _ in 0..10 {
            assert!(monitor.observe(Sample::default()).is_empty());
        }
        for warning in Warning::ALL {
            assert!(warning.describe().ends_with('.'));
            assert!(!warning.code().is_empty());
        }
    }
}
