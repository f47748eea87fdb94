//! Per-call signaling routes and signaling reconnection, as Twilio does it for twilio-voice.js.
//!
//! Every call's frames (`ringing`, `answer`, `hangup`, `cancel`, the incoming `invite`, call
//! errors) go through the call's route, keyed by the CallSid the client knows (the parent `CA…`
//! of a call it placed; the ringing leg's `CA…` of a call it received). A route points at the
//! signaling socket that carries the call, or at nothing while that socket is gone: frames
//! produced meanwhile are held, in order.
//!
//! An `answer` carries a reconnect token. When the socket drops, the call is held for the
//! `reconnectTimeout` seconds its `listen` asked for (at most 30; 0, the SDK's default, ends the
//! call at once; a `listen` without the field gets 30, Twilio's behaviour before the SDK sent
//! it). A new socket that sends `listen` (same identity) and then `invite {callsid, sdp, twilio:
//! {}, reconnect}` takes the call over: held frames are delivered, then, if the call is still
//! up, `answer {callsid, sdp, reconnect}` with a fresh token (the old one is retired); the media
//! peer is untouched. A token that is unknown, retired or for another call is refused with
//! `hangup` 31107 ("The reconnect parameter is invalid"); another identity's with 31209
//! ("Reconnect attempt is not authorized").

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shared::signaling::{ServerMessage, SignalingError};
use tokio::sync::mpsc;

use crate::engine::{EndedBy, IncomingReply, Inner, Sim};

/// Where a signaling socket's frames are queued for writing.
pub type Outbox = mpsc::UnboundedSender<String>;

/// The longest reconnect window Twilio grants (the SDK caps `reconnectTimeout` at 30 s).
pub const MAX_RECONNECT_WINDOW_SECONDS: u32 = 30;

/// The reconnect token is not one Twilio issued for this call (or it has been retired).
pub const RECONNECT_PARAMETER_INVALID: u32 = 31107;
/// The reconnect comes from another identity than the call's.
pub const RECONNECT_NOT_AUTHORIZED: u32 = 31209;

/// How long a call whose socket dropped is held for a reconnect, from `listen.reconnectTimeout`.
pub fn reconnect_window(reconnect_timeout: Option<u32>) -> Duration {
    let seconds = reconnect_timeout
        .unwrap_or(MAX_RECONNECT_WINDOW_SECONDS)
        .min(MAX_RECONNECT_WINDOW_SECONDS);
    Duration::from_secs(u64::from(seconds))
}

/// One call's route.
#[derive(Debug)]
pub struct Route {
    identity: String,
    /// The socket that carries the call now; `None` while the client is away.
    outbox: Option<Outbox>,
    /// Frames produced while the client was away, in order.
    held: Vec<String>,
    /// The current reconnect token, once an `answer` has issued one.
    token: Option<String>,
    /// Bumped at every detach and reattach, so a stale expiry does nothing.
    epoch: u64,
    /// The call is over: its last frame has been produced.
    over: bool,
}

/// What a reconnect `invite` gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Reattached {
    /// The call is up: held frames and a fresh `answer` were queued on the new socket.
    Live { held: usize },
    /// The call ended while the client was away: what it missed was queued on the new socket.
    Ended { held: usize },
    /// Refused: the client is told with a `hangup` carrying this error.
    Refused(SignalingError),
}

impl Inner {
    /// Sends `text` to the call's socket, or holds it while the client is away. A call without a
    /// route (never attached, or its reconnect window expired) loses it, as Twilio would.
    pub fn route_frame(&mut self, sid: &str, text: String) {
        let Some(route) = self.routes.get_mut(sid) else {
            return;
        };
        let text = match &route.outbox {
            Some(outbox) => match outbox.send(text) {
                Ok(()) => return,
                Err(mpsc::error::SendError(text)) => text,
            },
            None => text,
        };
        // The socket is gone (its end detaches the route and starts the reconnect window): hold
        // the frame for the client's return.
        route.held.push(text);
    }

    /// A new call (or incoming leg) `sid` is carried by `outbox`, the socket of `identity`.
    pub fn open_route(&mut self, sid: &str, identity: &str, outbox: Outbox) {
        self.routes.insert(
            sid.to_owned(),
            Route {
                identity: identity.to_owned(),
                outbox: Some(outbox),
                held: Vec::new(),
                token: None,
                epoch: 0,
                over: false,
            },
        );
    }

    fn retire(&mut self, sid: &str) -> Option<Route> {
        let route = self.routes.remove(sid)?;
        if let Some(token) = &route.token {
            self.tokens.remove(token);
        }
        Some(route)
    }

    fn set_detached(&mut self, sid: &str, detached: bool) {
        if let Some(call) = self.calls.get_mut(sid) {
            call.detached = detached;
        }
    }
}

/// An unguessable reconnect token: 128 bits of SipHash under per-process random keys.
fn new_token(sequence: u64) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut token = String::with_capacity(32);
    for half in 0..2u64 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(sequence);
        hasher.write_u64(half);
        hasher.write_u128(nanos);
        token.push_str(&format!("{:016x}", hasher.finish()));
    }
    token
}

impl Sim {
    /// Sends a call's frame through its route (logged as sent, even if held or lost).
    pub fn send_call(&self, sid: &str, message: ServerMessage) {
        let text = message.encode();
        self.log_frame("server", &text);
        self.lock().route_frame(sid, text);
    }

    /// Issues a fresh reconnect token for the call, retiring the previous one.
    pub fn issue_token(&self, sid: &str) -> Option<String> {
        let token = new_token(self.next_sequence());
        let mut inner = self.lock();
        let route = inner.routes.get_mut(sid)?;
        let previous = route.token.replace(token.clone());
        if let Some(previous) = previous {
            inner.tokens.remove(&previous);
        }
        inner.tokens.insert(token.clone(), sid.to_owned());
        Some(token)
    }

    /// The call's last frame has been produced. Nothing held: the route is done with. Frames
    /// held: it waits for the client to come back (or for its reconnect window to expire).
    pub fn close_route(&self, sid: &str) {
        let mut inner = self.lock();
        let Some(route) = inner.routes.get_mut(sid) else {
            return;
        };
        route.over = true;
        if route.held.is_empty() {
            inner.retire(sid);
        }
    }

    /// A signaling socket has gone: it no longer rings `identity`, and the calls it carried are
    /// held for `window` before they end.
    pub fn session_ended(
        self: &Arc<Self>,
        identity: Option<&str>,
        outbox: &Outbox,
        window: Duration,
    ) {
        let detached: Vec<(String, u64)> = {
            let mut inner = self.lock();
            if let Some(id) = identity {
                if inner
                    .clients
                    .get(id)
                    .is_some_and(|registered| registered.same_channel(outbox))
                {
                    inner.clients.remove(id);
                }
            }
            let mut detached = Vec::new();
            for (sid, route) in &mut inner.routes {
                if route
                    .outbox
                    .as_ref()
                    .is_some_and(|carrier| carrier.same_channel(outbox))
                {
                    route.outbox = None;
                    route.epoch += 1;
                    detached.push((sid.clone(), route.epoch));
                }
            }
            for (sid, _) in &detached {
                inner.set_detached(sid, true);
            }
            detached
        };
        for (sid, epoch) in detached {
            let sim = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(window).await;
                sim.expire(&sid, epoch);
            });
        }
    }

    /// The reconnect window of a detached call has passed: the call ends (Twilio cannot reach
    /// the client any more) and its token is retired.
    fn expire(&self, sid: &str, epoch: u64) {
        let (over, incoming_leg, answered) = {
            let mut inner = self.lock();
            let Some(route) = inner.routes.get(sid) else {
                return;
            };
            if route.epoch != epoch || route.outbox.is_some() {
                return;
            }
            let over = inner.retire(sid).is_some_and(|route| route.over);
            let incoming_leg = inner
                .calls
                .get(sid)
                .is_some_and(|call| call.parent_sid.is_some());
            let answered = matches!(inner.incoming.get(sid), Some(IncomingReply::Answered(_)));
            if !over {
                if let Some(call) = inner.calls.get_mut(sid) {
                    call.ended_by = Some("signaling-lost".into());
                }
            }
            (over, incoming_leg, answered)
        };
        self.log_frame(
            "server",
            &format!("\"<reconnect window expired for {sid}>\""),
        );
        if over {
            return;
        }
        if incoming_leg && !answered {
            // A browser that vanished while its incoming call rang does not answer it.
            self.incoming_reply(sid, IncomingReply::Lost);
        } else {
            self.end_call(sid, EndedBy::SignalingLost);
        }
    }

    /// A reconnect `invite` on the socket `outbox` of `identity`: takes call `callsid` over if
    /// `token` is its current one. Everything queued on the new socket is queued under the
    /// state lock, so no frame of the call can overtake the held ones.
    pub fn reattach(
        &self,
        callsid: &str,
        token: &str,
        identity: &str,
        outbox: &Outbox,
    ) -> Reattached {
        let fresh = new_token(self.next_sequence());
        let invalid = |detail: &str| {
            Reattached::Refused(SignalingError {
                code: RECONNECT_PARAMETER_INVALID,
                message: format!("The reconnect parameter is invalid: {detail}"),
            })
        };
        let mut inner = self.lock();
        let Some(sid) = inner.tokens.get(token).cloned() else {
            return invalid("unknown or expired reconnect token");
        };
        if sid != callsid {
            return invalid("the reconnect token is for another call");
        }
        let Some(route) = inner.routes.get_mut(&sid) else {
            return invalid("the call is over");
        };
        if route.identity != identity {
            return Reattached::Refused(SignalingError {
                code: RECONNECT_NOT_AUTHORIZED,
                message: "Reconnect attempt is not authorized.".into(),
            });
        }
        route.outbox = Some(outbox.clone());
        route.epoch += 1;
        let held = std::mem::take(&mut route.held);
        let over = route.over;
        let count = held.len();
        for text in held {
            let _ = outbox.send(text);
        }
        if let Some(call) = inner.calls.get_mut(&sid) {
            call.reattached += 1;
            call.detached = false;
        }
        let marker = format!("\"<reattached {sid}: {count} held frame(s) delivered>\"");
        inner.log("server", &marker);
        if over {
            inner.retire(&sid);
            return Reattached::Ended { held: count };
        }
        if let Some(route) = inner.routes.get_mut(&sid) {
            route.token = Some(fresh.clone());
        }
        inner.tokens.remove(token);
        inner.tokens.insert(fresh.clone(), sid.clone());
        let answer = ServerMessage::Answer {
            callsid: sid.clone(),
            // The far end's SDP as first answered (a call the client placed); the peer keeps
            // running, so nothing is renegotiated.
            sdp: inner.answers.get(&sid).cloned(),
            reconnect: Some(fresh),
        }
        .encode();
        inner.log("server", &answer);
        let _ = outbox.send(answer);
        Reattached::Live { held: count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tests::sim;
    use crate::engine::CallLog;
    use shared::signaling::Frame;

    fn socket() -> (Outbox, mpsc::UnboundedReceiver<String>) {
        mpsc::unbounded_channel()
    }

    /// A call placed by `identity` on `outbox`, answered: returns its sid and reconnect token.
    fn answered_call(sim: &Sim, identity: &str, outbox: &Outbox) -> (String, String) {
        let sid = sim.new_call_sid();
        let mut inner = sim.lock();
        inner.calls.insert(
            sid.clone(),
            CallLog {
                identity: Some(identity.into()),
                ..CallLog::new(sid.clone(), None, "in-progress")
            },
        );
        inner.answers.insert(sid.clone(), "v=0 far end".into());
        inner.open_route(&sid, identity, outbox.clone());
        drop(inner);
        let token = sim.issue_token(&sid).unwrap();
        (sid, token)
    }

    fn received(rx: &mut mpsc::UnboundedReceiver<String>) -> Vec<ServerMessage> {
        let mut frames = Vec::new();
        while let Ok(text) = rx.try_recv() {
            match ServerMessage::decode(&text) {
                Ok(Frame::Message(message)) => frames.push(message),
                other => panic!("{other:?}"),
            }
        }
        frames
    }

    fn hangup(sid: &str) -> ServerMessage {
        ServerMessage::Hangup {
            callsid: Some(sid.into()),
            error: None,
        }
    }

    fn refused_code(reattached: Reattached) -> u32 {
        match reattached {
            Reattached::Refused(error) => error.code,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_reconnect_takes_the_call_over_with_a_fresh_token() {
        let sim = sim();
        let (first, mut first_rx) = socket();
        let (sid, token) = answered_call(&sim, "clinician-ada", &first);
        sim.send_call(
            &sid,
            ServerMessage::Ringing {
                callsid: sid.clone(),
                sdp: None,
            },
        );
        assert_eq!(
            received(&mut first_rx).len(),
            1,
            "an attached call's frames go straight out"
        );

        sim.session_ended(Some("clinician-ada"), &first, Duration::from_secs(30));
        drop(first);
        assert!(sim.lock().calls[&sid].detached);
        // Produced while the client is away: held, in order.
        sim.send_call(
            &sid,
            ServerMessage::Ringing {
                callsid: sid.clone(),
                sdp: Some("a".into()),
            },
        );
        sim.send_call(
            &sid,
            ServerMessage::Ringing {
                callsid: sid.clone(),
                sdp: Some("b".into()),
            },
        );

        let (second, mut second_rx) = socket();
        assert_eq!(
            sim.reattach(&sid, &token, "clinician-ada", &second),
            Reattached::Live { held: 2 }
        );
        let frames = received(&mut second_rx);
        assert_eq!(frames.len(), 3, "{frames:?}");
        assert_eq!(
            frames[0],
            ServerMessage::Ringing {
                callsid: sid.clone(),
                sdp: Some("a".into())
            }
        );
        assert_eq!(
            frames[1],
            ServerMessage::Ringing {
                callsid: sid.clone(),
                sdp: Some("b".into())
            }
        );
        let ServerMessage::Answer {
            callsid,
            sdp,
            reconnect: Some(fresh),
        } = frames[2].clone()
        else {
            panic!("{:?}", frames[2]);
        };
        assert_eq!(callsid, sid);
        assert_eq!(
            sdp.as_deref(),
            Some("v=0 far end"),
            "the peer's existing answer, unchanged"
        );
        assert_ne!(fresh, token);
        let call = sim.lock().calls[&sid].clone();
        assert_eq!((call.reattached, call.detached), (1, false));

        // Later frames follow the call to the new socket.
        sim.send_call(&sid, hangup(&sid));
        assert_eq!(received(&mut second_rx), vec![hangup(&sid)]);

        // The old token is retired; the fresh one works once more.
        let (third, _third_rx) = socket();
        assert_eq!(
            refused_code(sim.reattach(&sid, &token, "clinician-ada", &third)),
            RECONNECT_PARAMETER_INVALID
        );
        assert!(matches!(
            sim.reattach(&sid, &fresh, "clinician-ada", &third),
            Reattached::Live { held: 0 }
        ));
    }

    #[tokio::test]
    async fn bad_reconnects_are_refused_as_twilio_does() {
        let sim = sim();
        let (first, _first_rx) = socket();
        let (sid, token) = answered_call(&sim, "clinician-ada", &first);
        let (other, _other_rx) = socket();
        let (other_sid, _) = answered_call(&sim, "clinician-ada", &other);
        sim.session_ended(Some("clinician-ada"), &first, Duration::from_secs(30));
        let (second, mut second_rx) = socket();
        assert_eq!(
            refused_code(sim.reattach(&sid, "not-a-token", "clinician-ada", &second)),
            RECONNECT_PARAMETER_INVALID
        );
        assert_eq!(
            refused_code(sim.reattach(&other_sid, &token, "clinician-ada", &second)),
            RECONNECT_PARAMETER_INVALID,
            "a token resumes only its own call"
        );
        assert_eq!(
            refused_code(sim.reattach(&sid, &token, "clinician-bob", &second)),
            RECONNECT_NOT_AUTHORIZED
        );
        assert!(received(&mut second_rx).is_empty());
        assert!(
            sim.lock().calls[&sid].detached,
            "refusals leave the call where it was"
        );
    }

    #[tokio::test]
    async fn a_call_that_ended_while_the_client_was_away_is_reported_on_return() {
        let sim = sim();
        let (first, _first_rx) = socket();
        let (sid, token) = answered_call(&sim, "clinician-ada", &first);
        sim.session_ended(Some("clinician-ada"), &first, Duration::from_secs(30));
        sim.send_call(&sid, hangup(&sid));
        sim.close_route(&sid);
        assert!(
            sim.lock().routes.contains_key(&sid),
            "held for the client's return"
        );

        let (second, mut second_rx) = socket();
        assert_eq!(
            sim.reattach(&sid, &token, "clinician-ada", &second),
            Reattached::Ended { held: 1 }
        );
        assert_eq!(
            received(&mut second_rx),
            vec![hangup(&sid)],
            "the hangup, and no answer"
        );
        assert!(!sim.lock().routes.contains_key(&sid));
        assert_eq!(
            refused_code(sim.reattach(&sid, &token, "clinician-ada", &second)),
            RECONNECT_PARAMETER_INVALID
        );
    }

    #[tokio::test]
    async fn an_ended_call_whose_hangup_was_delivered_lets_go_of_its_route() {
        let sim = sim();
        let (first, mut first_rx) = socket();
        let (sid, token) = answered_call(&sim, "clinician-ada", &first);
        sim.send_call(&sid, hangup(&sid));
        sim.close_route(&sid);
        assert_eq!(received(&mut first_rx), vec![hangup(&sid)]);
        assert!(sim.lock().routes.is_empty() && sim.lock().tokens.is_empty());
        let (second, _second_rx) = socket();
        assert_eq!(
            refused_code(sim.reattach(&sid, &token, "clinician-ada", &second)),
            RECONNECT_PARAMETER_INVALID
        );
    }

    #[tokio::test]
    async fn the_call_ends_when_the_reconnect_window_passes_but_not_once_reattached() {
        let sim = sim();
        let (first, _first_rx) = socket();
        let (lost, _) = answered_call(&sim, "clinician-ada", &first);
        let (kept, kept_token) = answered_call(&sim, "clinician-ada", &first);
        sim.session_ended(Some("clinician-ada"), &first, Duration::from_millis(100));
        let (second, _second_rx) = socket();
        assert!(matches!(
            sim.reattach(&kept, &kept_token, "clinician-ada", &second),
            Reattached::Live { .. }
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let inner = sim.lock();
        assert_eq!(inner.ended.get(&lost), Some(&EndedBy::SignalingLost));
        assert_eq!(
            inner.calls[&lost].ended_by.as_deref(),
            Some("signaling-lost")
        );
        assert!(!inner.routes.contains_key(&lost));
        assert_eq!(
            inner.ended.get(&kept),
            None,
            "the reattached call carries on"
        );
        assert!(inner.routes.contains_key(&kept));
    }

    #[tokio::test]
    async fn frames_a_dead_socket_could_not_take_are_held_until_the_client_returns() {
        let sim = sim();
        let (first, first_rx) = socket();
        let (sid, token) = answered_call(&sim, "clinician-ada", &first);
        // The socket's writer has gone before its session noticed.
        drop(first_rx);
        sim.send_call(&sid, hangup(&sid));
        sim.close_route(&sid);
        sim.session_ended(Some("clinician-ada"), &first, Duration::from_secs(30));
        assert!(sim.lock().calls[&sid].detached);
        let (second, mut second_rx) = socket();
        assert_eq!(
            sim.reattach(&sid, &token, "clinician-ada", &second),
            Reattached::Ended { held: 1 }
        );
        assert_eq!(received(&mut second_rx), vec![hangup(&sid)]);
    }

    #[tokio::test]
    async fn a_zero_window_ends_the_call_at_once_as_the_sdk_default_asks() {
        let sim = sim();
        let (first, _first_rx) = socket();
        let (sid, token) = answered_call(&sim, "clinician-ada", &first);
        sim.session_ended(Some("clinician-ada"), &first, reconnect_window(Some(0)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(sim.lock().ended.get(&sid), Some(&EndedBy::SignalingLost));
        let (second, _second_rx) = socket();
        assert_eq!(
            refused_code(sim.reattach(&sid, &token, "clinician-ada", &second)),
            RECONNECT_PARAMETER_INVALID
        );
    }

    #[test]
    fn windows_follow_listen_and_are_capped() {
        assert_eq!(reconnect_window(Some(0)), Duration::ZERO);
        assert_eq!(reconnect_window(Some(10)), Duration::from_secs(10));
        assert_eq!(reconnect_window(Some(300)), Duration::from_secs(30));
        assert_eq!(reconnect_window(None), Duration::from_secs(30));
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = new_token(1);
        let b = new_token(1);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
