//! The callee's media: a real WebRTC peer (str0m, sans-IO, on a loopback UDP socket) that answers
//! the browser's SDP offer, plays a recognisable tone (440 Hz, PCMU) to the clinician, and
//! measures the level of the audio it receives, so a test can prove that mute silences the
//! clinician and unmute restores them.

use std::io::ErrorKind;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

/// A new offer for the running peer and where its answer (or why not) goes.
pub type Renegotiation = (String, std::sync::mpsc::Sender<Result<String, String>>);

/// What the peer observed, for inspection.
#[derive(Debug, Default)]
pub struct MediaStats {
    pub connected: AtomicBool,
    pub packets_in: AtomicU64,
    pub packets_out: AtomicU64,
    /// Peak RMS of received 20 ms frames over the last 1–2 s, 0..1 (×1e6, as an integer): a peak
    /// over a window, because Chromium's fake microphone beeps rather than hums.
    pub level_micros: AtomicU64,
    pub stop: AtomicBool,
    pub dtmf: Mutex<String>,
    /// Renegotiations (ICE restarts) waiting for the peer's thread: the offer, and where to put
    /// the answer.
    pub renegotiations: Mutex<Vec<Renegotiation>>,
    pub restarts: AtomicU64,
}

impl MediaStats {
    /// Asks the running peer to accept a new offer (a `reinvite`); returns its answer.
    pub fn renegotiate(&self, offer_sdp: &str) -> Result<String, String> {
        let (sender, receiver) = std::sync::mpsc::channel();
        self.renegotiations
            .lock()
            .map_err(|_| "peer state poisoned".to_owned())?
            .push((offer_sdp.to_owned(), sender));
        receiver
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| "the peer did not answer".to_owned())?
    }
}

/// A snapshot of [`MediaStats`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaReport {
    pub connected: bool,
    pub packets_in: u64,
    pub packets_out: u64,
    /// RMS level of the clinician's audio as received, 0..1.
    pub level: f64,
    pub dtmf: String,
    /// Completed renegotiations (ICE restarts).
    pub restarts: u64,
}

impl MediaStats {
    pub fn report(&self) -> MediaReport {
        MediaReport {
            connected: self.connected.load(Ordering::Relaxed),
            packets_in: self.packets_in.load(Ordering::Relaxed),
            packets_out: self.packets_out.load(Ordering::Relaxed),
            level: self.level_micros.load(Ordering::Relaxed) as f64 / 1e6,
            dtmf: self.dtmf.lock().map(|d| d.clone()).unwrap_or_default(),
            restarts: self.restarts.load(Ordering::Relaxed),
        }
    }
}

/// G.711 μ-law decoding of one byte to a linear sample in -1..1.
pub fn mulaw_decode(byte: u8) -> f64 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0f;
    let magnitude = ((i32::from(mantissa) << 3) + 0x84) << exponent;
    let sample = magnitude - 0x84;
    let value = if sign != 0 { -sample } else { sample };
    f64::from(value) / 32_768.0
}

/// G.711 μ-law encoding of a linear sample in -1..1.
pub fn mulaw_encode(sample: f64) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let mut pcm = (sample.clamp(-1.0, 1.0) * 32_767.0) as i32;
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && pcm & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (pcm >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

fn rms(frame: &[u8]) -> f64 {
    if frame.is_empty() {
        return 0.0;
    }
    let sum: f64 = frame.iter().map(|b| mulaw_decode(*b).powi(2)).sum();
    (sum / frame.len() as f64).sqrt()
}

/// Answers `offer_sdp` and runs the peer on its own thread until `stats.stop` is set or ICE
/// disconnects. Returns the answer SDP and the live statistics. With `start_peer` false (the
/// ICE-failure fault) the answer is real but nothing listens behind it.
pub fn answer(offer_sdp: &str, start_peer: bool) -> Result<(String, Arc<MediaStats>), String> {
    let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|e| format!("bad offer: {e}"))?;
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_pcmu(true, false)
        .build(Instant::now());
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let candidate = Candidate::host(local, "udp").map_err(|e| e.to_string())?;
    rtc.add_local_candidate(candidate);
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| format!("offer refused: {e}"))?;
    let stats = Arc::new(MediaStats::default());
    let thread_stats = stats.clone();
    if start_peer {
        std::thread::spawn(move || run(rtc, socket, &thread_stats, None));
    }
    Ok((answer.to_sdp_string(), stats))
}

/// The simulator's side of an incoming call: it offers, the browser answers.
pub struct Offerer {
    rtc: Rtc,
    socket: UdpSocket,
    pending: SdpPendingOffer,
    offer: String,
    mid: Mid,
}

impl Offerer {
    /// Prepares an audio offer on a loopback UDP socket.
    pub fn new() -> Result<Self, String> {
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_pcmu(true, false)
            .build(Instant::now());
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        let candidate = Candidate::host(local, "udp").map_err(|e| e.to_string())?;
        rtc.add_local_candidate(candidate);
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = api.apply().ok_or("nothing to offer")?;
        Ok(Self {
            offer: offer.to_sdp_string(),
            rtc,
            socket,
            pending,
            mid,
        })
    }

    pub fn offer_sdp(&self) -> &str {
        &self.offer
    }

    /// Applies the browser's answer and starts the peer.
    pub fn accept(mut self, answer_sdp: &str) -> Result<Arc<MediaStats>, String> {
        let answer =
            SdpAnswer::from_sdp_string(answer_sdp).map_err(|e| format!("bad answer: {e}"))?;
        self.rtc
            .sdp_api()
            .accept_answer(self.pending, answer)
            .map_err(|e| format!("answer refused: {e}"))?;
        let stats = Arc::new(MediaStats::default());
        let thread_stats = stats.clone();
        let (rtc, socket, mid) = (self.rtc, self.socket, self.mid);
        std::thread::spawn(move || run(rtc, socket, &thread_stats, Some(mid)));
        Ok(stats)
    }
}

fn run(mut rtc: Rtc, socket: UdpSocket, stats: &MediaStats, known_mid: Option<Mid>) {
    let mut buffer = vec![0u8; 2000];
    let mut audio_mid: Option<Mid> = known_mid;
    let mut next_frame = Instant::now();
    let mut rtp_time: u64 = 0;
    let mut phase: f64 = 0.0;
    // Peak levels of the current and the previous one-second window.
    let (mut window_start, mut window_peak, mut previous_peak) = (Instant::now(), 0.0_f64, 0.0_f64);
    let Ok(local) = socket.local_addr() else {
        return;
    };
    loop {
        if stats.stop.load(Ordering::Relaxed) {
            rtc.disconnect();
            return;
        }
        let pending: Vec<_> = stats
            .renegotiations
            .lock()
            .map(|mut p| p.drain(..).collect())
            .unwrap_or_default();
        for (offer, reply) in pending {
            let answer = SdpOffer::from_sdp_string(&offer)
                .map_err(|e| format!("bad offer: {e}"))
                .and_then(|offer| {
                    rtc.sdp_api()
                        .accept_offer(offer)
                        .map_err(|e| format!("offer refused: {e}"))
                })
                .map(|answer| answer.to_sdp_string());
            if answer.is_ok() {
                stats.restarts.fetch_add(1, Ordering::Relaxed);
            }
            let _ = reply.send(answer);
        }
        // Play 20 ms of tone (160 PCMU samples at 8 kHz) once connected.
        let now = Instant::now();
        if stats.connected.load(Ordering::Relaxed) && now >= next_frame {
            if let Some(mid) = audio_mid {
                if let Some(writer) = rtc.writer(mid) {
                    let pt = writer.payload_params().next().map(|p| p.pt());
                    let frame: Vec<u8> = (0..160)
                        .map(|_| {
                            phase += 2.0 * std::f64::consts::PI * 440.0 / 8000.0;
                            mulaw_encode(0.4 * phase.sin())
                        })
                        .collect();
                    if let Some(pt) = pt {
                        if writer
                            .write(
                                pt,
                                now,
                                MediaTime::new(rtp_time, Frequency::EIGHT_KHZ),
                                frame,
                            )
                            .is_ok()
                        {
                            stats.packets_out.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    rtp_time += 160;
                }
            }
            next_frame = now + Duration::from_millis(20);
        }
        let timeout = match rtc.poll_output() {
            Ok(Output::Timeout(at)) => at,
            Ok(Output::Transmit(t)) => {
                let _ = socket.send_to(&t.contents, t.destination);
                continue;
            }
            Ok(Output::Event(event)) => {
                match event {
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => return,
                    Event::Connected => stats.connected.store(true, Ordering::Relaxed),
                    Event::MediaAdded(added) if added.kind == MediaKind::Audio => {
                        audio_mid = Some(added.mid)
                    }
                    Event::MediaData(data) => {
                        stats.packets_in.fetch_add(1, Ordering::Relaxed);
                        if let str0m::format::CodecExtra::Tele(tone) = &data.codec_extra {
                            if tone.end {
                                let digit = match tone.event {
                                    0..=9 => char::from(b'0' + tone.event),
                                    10 => '*',
                                    11 => '#',
                                    // RFC 4733: 12–15 are A–D; anything above is not a key.
                                    12..=15 => char::from(b'A' + (tone.event - 12)),
                                    _ => '?',
                                };
                                if let Ok(mut dtmf) = stats.dtmf.lock() {
                                    dtmf.push(digit);
                                }
                            }
                        } else {
                            if window_start.elapsed() >= Duration::from_secs(1) {
                                previous_peak = window_peak;
                                window_peak = 0.0;
                                window_start = Instant::now();
                            }
                            window_peak = window_peak.max(rms(&data.data));
                            let level = window_peak.max(previous_peak);
                            stats
                                .level_micros
                                .store((level * 1e6) as u64, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                }
                continue;
            }
            Err(_) => return,
        };
        // The tone's schedule only matters once there is a connection to play it on.
        let playing = stats.connected.load(Ordering::Relaxed) && audio_mid.is_some();
        let deadline = if playing {
            timeout.min(next_frame)
        } else {
            timeout
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            if rtc.handle_input(Input::Timeout(Instant::now())).is_err() {
                return;
            }
            continue;
        }
        let _ = socket.set_read_timeout(Some(wait.min(Duration::from_millis(20))));
        let input = match socket.recv_from(&mut buffer) {
            Ok((n, source)) => match buffer[..n].try_into() {
                Ok(contents) => Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: local,
                        contents,
                    },
                ),
                Err(_) => continue,
            },
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Input::Timeout(Instant::now())
            }
            Err(_) => return,
        };
        if rtc.handle_input(input).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mulaw_round_trips_closely() {
        for i in -100..=100 {
            let x = f64::from(i) / 100.0 * 0.9;
            let y = mulaw_decode(mulaw_encode(x));
            assert!((x - y).abs() < 0.03, "{x} → {y}");
        }
        assert!(rms(&[mulaw_encode(0.0); 160]) < 0.001);
        let tone: Vec<u8> = (0..160)
            .map(|i| mulaw_encode(0.4 * (f64::from(i) * 0.3).sin()))
            .collect();
        assert!((rms(&tone) - 0.4 / 2f64.sqrt()).abs() < 0.03);
    }
}
