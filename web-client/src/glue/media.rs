//! The call's media: the microphone (getUserMedia), the RTCPeerConnection with PCMU preferred
//! over Opus, offers and answers sent without waiting for ICE gathering, mute, RTP DTMF, remote
//! audio playback and getStats sampling. [`Media`] owns its handlers and the audio element;
//! dropping it stops the microphone and closes the connection.

use js_sys::{Array, Function, Object, Reflect};
use shared::call_quality::Sample;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{HtmlAudioElement, MediaStream, MediaStreamTrack, RtcPeerConnection, RtcTrackEvent};

/// The call's peer connection, as the async steps take it (a cheap handle).
pub type Connection = RtcPeerConnection;

/// Why the microphone could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MicrophoneError {
    Denied,
    Absent,
    /// Held by another application, or the device failed to start: worth trying again.
    InUse,
}

fn get(target: &JsValue, name: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

fn set(target: &JsValue, name: &str, value: &JsValue) {
    let _ = Reflect::set(target, &JsValue::from_str(name), value);
}

/// Calls `target.name(...args)`.
fn call(target: &JsValue, name: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let method: Function = get(target, name).dyn_into()?;
    method.apply(target, &args.iter().collect::<Array>())
}

async fn call_async(target: &JsValue, name: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let promise: js_sys::Promise = call(target, name, args)?.dyn_into()?;
    JsFuture::from(promise).await
}

fn object(pairs: &[(&str, JsValue)]) -> JsValue {
    let object = Object::new();
    for (name, value) in pairs {
        set(&object, name, value);
    }
    object.into()
}

fn media_devices() -> Result<web_sys::MediaDevices, JsValue> {
    web_sys::window()
        .ok_or_else(|| JsValue::from_str("no window"))?
        .navigator()
        .media_devices()
}

/// Opens the microphone.
pub async fn acquire_microphone() -> Result<MediaStream, MicrophoneError> {
    let devices = media_devices().map_err(|_| MicrophoneError::Absent)?;
    let constraints = object(&[("audio", JsValue::TRUE), ("video", JsValue::FALSE)]);
    match call_async(&devices, "getUserMedia", &[constraints]).await {
        Ok(stream) => stream.dyn_into().map_err(|_| MicrophoneError::Absent),
        Err(error) => Err(match get(&error, "name").as_string().as_deref() {
            Some("NotAllowedError" | "SecurityError" | "PermissionDeniedError") => {
                MicrophoneError::Denied
            }
            Some("NotReadableError" | "TrackStartError" | "AbortError") => MicrophoneError::InUse,
            _ => MicrophoneError::Absent,
        }),
    }
}

/// Stops every track of `stream`: the browser's microphone indicator goes off.
pub fn stop_tracks(stream: &MediaStream) {
    for track in stream.get_tracks().iter() {
        if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
            track.stop();
        }
    }
}

/// Whether any audio input is listed (`None` when the browser cannot say).
pub async fn has_audio_input() -> Option<bool> {
    let devices = media_devices().ok()?;
    let list = call_async(&devices, "enumerateDevices", &[]).await.ok()?;
    let list: Array = list.dyn_into().ok()?;
    Some(
        list.iter()
            .any(|d| get(&d, "kind").as_string().as_deref() == Some("audioinput")),
    )
}

/// The peer connection and what belongs to it.
pub struct Media {
    pc: RtcPeerConnection,
    stream: MediaStream,
    audio: HtmlAudioElement,
    _on_ice: Closure<dyn FnMut()>,
    _on_track: Closure<dyn FnMut(RtcTrackEvent)>,
}

/// Sends `stream`'s audio on `pc` (PCMU first) and adds the hidden element that plays the far end.
fn attach(pc: &RtcPeerConnection, stream: &MediaStream) -> Result<HtmlAudioElement, JsValue> {
    for track in stream.get_audio_tracks().iter() {
        call(pc, "addTrack", &[track, stream.clone().into()])?;
    }
    prefer_pcmu(pc);
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| JsValue::from_str("no document"))?;
    let audio: HtmlAudioElement = document.create_element("audio")?.dyn_into()?;
    audio.set_autoplay(true);
    audio.set_attribute("data-remote-audio", "")?;
    audio.set_hidden(true);
    if let Some(body) = document.body() {
        body.append_child(&audio)?;
    }
    Ok(audio)
}

impl Media {
    /// A connection sending `stream`'s audio; `on_ice_state` gets every ICE connection state.
    /// On failure the microphone is stopped and nothing is left open.
    pub fn new(
        stream: MediaStream,
        ice_servers: &[String],
        mut on_ice_state: impl FnMut(String) + 'static,
    ) -> Result<Self, JsValue> {
        let servers: Array = ice_servers
            .iter()
            .map(|url| object(&[("urls", JsValue::from_str(url))]))
            .collect();
        let config = web_sys::RtcConfiguration::new();
        config.set_ice_servers(&servers);
        config.set_bundle_policy(web_sys::RtcBundlePolicy::MaxBundle);
        let pc = RtcPeerConnection::new_with_configuration(&config).inspect_err(|_| {
            stop_tracks(&stream);
        })?;
        // Nothing is left behind on failure: the microphone stops, the connection closes.
        let audio = attach(&pc, &stream).inspect_err(|_| {
            pc.close();
            stop_tracks(&stream);
        })?;

        let pc_for_ice = pc.clone();
        let on_ice = Closure::<dyn FnMut()>::new(move || {
            on_ice_state(
                get(&pc_for_ice, "iceConnectionState")
                    .as_string()
                    .unwrap_or_default(),
            );
        });
        pc.set_oniceconnectionstatechange(Some(on_ice.as_ref().unchecked_ref()));
        let audio_for_track = audio.clone();
        let on_track = Closure::<dyn FnMut(RtcTrackEvent)>::new(move |event: RtcTrackEvent| {
            let streams = event.streams();
            let remote = if streams.length() > 0 {
                streams.get(0)
            } else {
                let stream = MediaStream::new();
                if let Ok(stream) = &stream {
                    stream.add_track(&event.track());
                }
                stream.map(JsValue::from).unwrap_or(JsValue::NULL)
            };
            set(&audio_for_track, "srcObject", &remote);
            if let Ok(promise) = call(&audio_for_track, "play", &[]) {
                if let Ok(promise) = promise.dyn_into::<js_sys::Promise>() {
                    // An autoplay refusal rejects the promise; the call carries on regardless.
                    crate::glue::task::spawn(async move {
                        let _ = JsFuture::from(promise).await;
                    });
                }
            }
        });
        pc.set_ontrack(Some(on_track.as_ref().unchecked_ref()));
        Ok(Self {
            pc,
            stream,
            audio,
            _on_ice: on_ice,
            _on_track: on_track,
        })
    }

    /// The connection, for the async steps (a cheap handle).
    pub fn connection(&self) -> RtcPeerConnection {
        self.pc.clone()
    }

    pub fn set_microphone_enabled(&self, enabled: bool) {
        for track in self.stream.get_audio_tracks().iter() {
            if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
                track.set_enabled(enabled);
            }
        }
    }

    fn dtmf_sender(&self) -> Option<JsValue> {
        let senders: Array = call(&self.pc, "getSenders", &[]).ok()?.dyn_into().ok()?;
        let dtmf = get(&senders.get(0), "dtmf");
        (!dtmf.is_null() && !dtmf.is_undefined()).then_some(dtmf)
    }

    /// Whether RTP DTMF (telephone-event) was negotiated.
    pub fn can_insert_dtmf(&self) -> bool {
        self.dtmf_sender()
            .is_some_and(|dtmf| get(&dtmf, "canInsertDTMF").as_bool() == Some(true))
    }

    pub fn insert_dtmf(&self, digits: &str) -> bool {
        self.dtmf_sender()
            .is_some_and(|dtmf| call(&dtmf, "insertDTMF", &[JsValue::from_str(digits)]).is_ok())
    }
}

impl Drop for Media {
    fn drop(&mut self) {
        self.pc.set_oniceconnectionstatechange(None);
        self.pc.set_ontrack(None);
        self.pc.close();
        stop_tracks(&self.stream);
        set(&self.audio, "srcObject", &JsValue::NULL);
        self.audio.remove();
    }
}

/// Orders the audio codecs PCMU, then Opus, then the rest (where the browser supports it).
fn prefer_pcmu(pc: &RtcPeerConnection) {
    let Some(capabilities) = web_sys::RtcRtpSender::get_capabilities("audio") else {
        return;
    };
    let Ok(codecs) = get(&capabilities, "codecs").dyn_into::<Array>() else {
        return;
    };
    // Three buckets rather than a sort: the order within each stays the browser's, and a stable
    // sort's code would be about 3.5 kB of this module.
    let mut ranked: [Vec<JsValue>; 3] = Default::default();
    for codec in codecs.iter() {
        let mime = get(&codec, "mimeType").as_string().unwrap_or_default();
        let rank = match mime.to_ascii_lowercase().as_str() {
            "audio/pcmu" => 0,
            "audio/opus" => 1,
            _ => 2,
        };
        if let Some(bucket) = ranked.get_mut(rank) {
            bucket.push(codec);
        }
    }
    let ordered: Array = ranked.into_iter().flatten().collect();
    if let Ok(transceivers) = call(pc, "getTransceivers", &[]).and_then(|t| t.dyn_into::<Array>()) {
        for transceiver in transceivers.iter() {
            let _ = call(
                &transceiver,
                "setCodecPreferences",
                &[ordered.clone().into()],
            );
        }
    }
}

/// Sets the local description and returns its SDP at once, as twilio-voice.js does
/// (`rtcpc.ts` `getSDP` right after `setLocalDescription`): Twilio's media servers learn the
/// browser's addresses from its connectivity checks (peer-reflexive candidates), so waiting for
/// gathering to complete would only delay the invite, by seconds where a STUN server is slow.
async fn local_sdp(pc: &RtcPeerConnection, description: JsValue) -> Result<String, JsValue> {
    call_async(pc, "setLocalDescription", &[description]).await?;
    get(&get(pc, "localDescription"), "sdp")
        .as_string()
        .ok_or_else(|| JsValue::from_str("no local description"))
}

/// Creates the offer (an ICE restart when asked) and returns its SDP.
pub async fn local_offer(pc: RtcPeerConnection, ice_restart: bool) -> Result<String, JsValue> {
    let options = object(&[("iceRestart", JsValue::from_bool(ice_restart))]);
    let offer = call_async(&pc, "createOffer", &[options]).await?;
    local_sdp(&pc, offer).await
}

/// Sets an incoming call's offer and returns the answer's SDP.
pub async fn local_answer(pc: RtcPeerConnection, offer: String) -> Result<String, JsValue> {
    let remote = object(&[("type", "offer".into()), ("sdp", offer.into())]);
    call_async(&pc, "setRemoteDescription", &[remote]).await?;
    let answer = call_async(&pc, "createAnswer", &[]).await?;
    local_sdp(&pc, answer).await
}

pub async fn apply_answer(pc: RtcPeerConnection, sdp: String) -> Result<(), JsValue> {
    let remote = object(&[("type", "answer".into()), ("sdp", sdp.into())]);
    call_async(&pc, "setRemoteDescription", &[remote]).await?;
    Ok(())
}

fn number(value: &JsValue, name: &str) -> Option<f64> {
    get(value, name).as_f64()
}

/// One getStats reading for the quality monitor.
pub async fn sample(pc: RtcPeerConnection, muted: bool) -> Option<Sample> {
    let report = call_async(&pc, "getStats", &[]).await.ok()?;
    let values = call(&report, "values", &[]).ok()?;
    let mut sample = Sample {
        muted,
        ..Sample::default()
    };
    for stat in js_sys::try_iter(&values).ok()??.flatten() {
        let kind = get(&stat, "kind").as_string();
        match get(&stat, "type").as_string().as_deref() {
            Some("inbound-rtp") if kind.as_deref() == Some("audio") => {
                sample.packets_received = number(&stat, "packetsReceived").unwrap_or(0.0) as u64;
                sample.packets_lost = number(&stat, "packetsLost").unwrap_or(0.0).max(0.0) as u64;
                sample.jitter_seconds = number(&stat, "jitter").unwrap_or(0.0);
            }
            Some("candidate-pair") if get(&stat, "nominated").as_bool() == Some(true) => {
                sample.round_trip_seconds = number(&stat, "currentRoundTripTime");
            }
            Some("media-source") if kind.as_deref() == Some("audio") => {
                sample.microphone_level = number(&stat, "audioLevel");
            }
            _ => {}
        }
    }
    Some(sample)
}
