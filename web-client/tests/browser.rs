//! Glue tests that need a real browser (wasm-bindgen-test in headless Chromium with a fake
//! microphone): media offers with PCMU first, returned without waiting for ICE gathering,
//! teardown, the panel DOM and its events, a host token promise bounded, timers, the
//! event-stream reader, and the module's allocator. Run by `scripts/test` through chromedriver.
#![cfg(target_arch = "wasm32")]
// A test file: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_client::glue::http::{Api, RequestError};
use web_client::glue::media::{self, Media};
use web_client::glue::panel::{Panel, PanelAction, PanelNotes};
use web_client::glue::timer::{sleep, Interval};
use web_client::panel::{ButtonView, FallbackView, PanelView, ReadinessItem};

wasm_bindgen_test_configure!(run_in_browser);

fn document() -> web_sys::Document {
    web_sys::window()
        .and_then(|w| w.document())
        .expect("document")
}

#[wasm_bindgen_test]
async fn an_offer_prefers_pcmu_comes_before_gathering_and_teardown_releases_everything() {
    let stream = media::acquire_microphone().await.expect("fake microphone");
    let track: web_sys::MediaStreamTrack = stream
        .get_audio_tracks()
        .get(0)
        .dyn_into()
        .expect("audio track");
    let states = Rc::new(RefCell::new(Vec::new()));
    let seen = states.clone();
    let media = Media::new(stream, &[], move |state| seen.borrow_mut().push(state)).expect("media");
    let sdp = media::local_offer(media.connection(), false)
        .await
        .expect("offer");
    let audio_line = sdp
        .lines()
        .find(|l| l.starts_with("m=audio"))
        .expect("audio m-line");
    let payloads: Vec<&str> = audio_line.split(' ').skip(3).collect();
    assert_eq!(payloads.first(), Some(&"0"), "PCMU first: {audio_line}");
    assert!(
        payloads
            .get(1)
            .is_some_and(|p| sdp.contains(&format!("a=rtpmap:{p} opus/48000"))),
        "Opus second: {audio_line}"
    );
    // Sent as twilio-voice.js sends it: straight after setLocalDescription, not after gathering
    // (its state changes in queued tasks, and none ran between that promise and this line).
    let gathering = js_sys::Reflect::get(&media.connection(), &"iceGatheringState".into())
        .expect("iceGatheringState")
        .as_string();
    assert_ne!(
        gathering.as_deref(),
        Some("complete"),
        "the offer waited for ICE gathering"
    );
    assert_eq!(
        document()
            .query_selector_all("[data-remote-audio]")
            .expect("query")
            .length(),
        1
    );
    media.set_microphone_enabled(false);
    assert!(!track.enabled());
    media.set_microphone_enabled(true);
    assert!(track.enabled());
    let pc = media.connection();
    drop(media);
    assert_eq!(pc.signaling_state(), web_sys::RtcSignalingState::Closed);
    assert_eq!(track.ready_state(), web_sys::MediaStreamTrackState::Ended);
    assert_eq!(
        document()
            .query_selector_all("[data-remote-audio]")
            .expect("query")
            .length(),
        0,
        "the audio element goes with the media"
    );
}

/// The element under `host` that `selector` names (the test fails naming it if there is none).
fn part(host: &web_sys::Element, selector: &str) -> web_sys::HtmlElement {
    host.query_selector(selector)
        .ok()
        .flatten()
        .and_then(|element| element.dyn_into().ok())
        .ok_or(selector)
        .expect("an element for the selector")
}

fn sample_view() -> PanelView {
    PanelView {
        state: "ended",
        outcome: Some("busy"),
        heading: "Pat Example".into(),
        appointment_line: "09:30 · Review".into(),
        status: "The patient's line is busy.".into(),
        timer: None,
        warning: None,
        readiness: vec![ReadinessItem {
            check: "microphone",
            ok: "true",
            text: "Microphone allowed.".into(),
        }],
        call: ButtonView {
            visible: true,
            enabled: true,
            label: "Call again".into(),
        },
        mute: ButtonView::default(),
        muted: false,
        end: ButtonView::default(),
        keypad: ButtonView::default(),
        digits_sent: None,
        accept: ButtonView::default(),
        decline: ButtonView::default(),
        fallback: Some(FallbackView {
            reason: "The patient's line is busy.".into(),
            number: Some(("07700 900123".into(), Some("tel:+447700900123".into()))),
        }),
    }
}

#[wasm_bindgen_test]
fn the_panel_renders_a_view_reports_clicks_and_leaves_with_its_listeners() {
    let host = document().create_element("div").expect("div");
    document()
        .body()
        .expect("body")
        .append_child(&host)
        .expect("append");
    let actions = Rc::new(RefCell::new(Vec::new()));
    let seen = actions.clone();
    let panel = Panel::mount(&host, move |action| seen.borrow_mut().push(action)).expect("mount");
    let saved = PanelNotes {
        copied: Some("Number copied."),
        manual_outcome: Some("Outcome saved."),
    };
    panel.update(&sample_view(), false, &saved);

    let root = part(&host, ".call-panel");
    assert_eq!(root.get_attribute("data-state").as_deref(), Some("ended"));
    assert_eq!(root.get_attribute("data-outcome").as_deref(), Some("busy"));
    let status = part(&host, ".call-status");
    assert_eq!(status.get_attribute("aria-live").as_deref(), Some("polite"));
    assert_eq!(
        status.text_content().as_deref(),
        Some("The patient's line is busy.")
    );
    let number = part(&host, "a.fallback-number");
    assert_eq!(
        number.get_attribute("href").as_deref(),
        Some("tel:+447700900123")
    );
    // A number recorded with a typo is shown to be read, with no link to dial other digits.
    let mut unlinked = sample_view();
    unlinked.fallback = Some(FallbackView {
        reason: "The patient's line is busy.".into(),
        number: Some(("07700 9OO123".into(), None)),
    });
    panel.update(&unlinked, false, &PanelNotes::default());
    assert_eq!(number.text_content().as_deref(), Some("07700 9OO123"));
    assert_eq!(number.get_attribute("href"), None);
    panel.update(&sample_view(), false, &saved);
    assert_eq!(
        number.get_attribute("href").as_deref(),
        Some("tel:+447700900123")
    );
    // Each note is said where it belongs: the copy's next to its button, the outcome's under
    // the form.
    let said_after = |selector: &str| part(&host, selector).text_content();
    assert_eq!(
        said_after("[data-action=copy-number] ~ .copy-status").as_deref(),
        Some("Number copied.")
    );
    assert_eq!(
        said_after(".manual-outcome ~ .manual-outcome-status").as_deref(),
        Some("Outcome saved.")
    );
    // The reason is not said twice: hidden while the status line says the same.
    let reason = part(&host, ".call-fallback h4 ~ .fallback-reason");
    assert!(reason.hidden());
    let mut other_status = sample_view();
    other_status.status = "Call ended.".into();
    panel.update(&other_status, false, &saved);
    assert!(!reason.hidden());
    assert_eq!(
        reason.text_content().as_deref(),
        Some("The patient's line is busy.")
    );
    // The digits sent are shown above an open keypad, and out of the page before any.
    let digits = part(&host, ".call-keypad .keypad-digits");
    assert!(digits.hidden());
    let mut connected = sample_view();
    connected.state = "connected";
    connected.keypad = ButtonView {
        visible: true,
        enabled: true,
        label: "Keypad".into(),
    };
    connected.digits_sent = Some("Sent: 12#".into());
    panel.update(&connected, true, &saved);
    assert!(!digits.hidden());
    assert_eq!(digits.text_content().as_deref(), Some("Sent: 12#"));
    panel.update(&sample_view(), false, &saved);
    assert!(digits.hidden());
    let call = part(&host, "[data-action=call]");
    assert!(!call.hidden());
    assert_eq!(call.text_content().as_deref(), Some("Call again"));
    assert_eq!(
        call.get_attribute("aria-keyshortcuts").as_deref(),
        Some("Alt+C")
    );
    // The tooltip names what the button does now, with its keys.
    assert_eq!(
        call.get_attribute("title").as_deref(),
        Some("Call again (Alt+C)")
    );
    let readiness = part(&host, ".call-readiness li");
    assert_eq!(readiness.get_attribute("data-ok").as_deref(), Some("true"));
    // No call timed: the timer is out of the page.
    let timer = part(&host, ".call-timer");
    assert!(timer.hidden());
    let end = part(&host, "[data-action=end]");
    assert!(end.hidden());

    call.click();
    let digit = part(&host, "[data-digit='#']");
    digit.click();
    assert_eq!(
        *actions.borrow(),
        vec![PanelAction::Call, PanelAction::Digit("#".into())]
    );

    drop(panel);
    assert!(host.query_selector(".call-panel").ok().flatten().is_none());
    call.click();
    assert_eq!(actions.borrow().len(), 2, "no listener outlives the panel");
    host.remove();
}

#[wasm_bindgen_test]
async fn an_interval_ticks_until_dropped() {
    let ticks = Rc::new(RefCell::new(0));
    let counter = ticks.clone();
    let interval = Interval::every(10, move || *counter.borrow_mut() += 1).expect("interval");
    // Two ticks, however busy the machine (a 10 s guard, not a timing expectation).
    for _ in 0..1_000 {
        if *ticks.borrow() >= 2 {
            break;
        }
        sleep(10).await;
    }
    drop(interval);
    let at_drop = *ticks.borrow();
    assert!(at_drop >= 2, "{at_drop} ticks");
    sleep(80).await;
    assert_eq!(*ticks.borrow(), at_drop);
}

#[wasm_bindgen_test]
async fn the_event_stream_reader_delivers_events_across_chunks() {
    let token = js_sys::Function::new_no_args("return 'test-session';");
    let api = Api::new(String::new(), token);
    let events = Rc::new(RefCell::new(Vec::new()));
    let ended = Rc::new(RefCell::new(false));
    let (seen, done) = (events.clone(), ended.clone());
    let body =
        "event:%20snapshot%0Adata:%20%7B%22calls%22:[]%7D%0A%0Aevent:%20call%0Adata:%201%0A%0A";
    let _stream = api
        .events(
            &format!("data:text/event-stream,{body}"),
            move |event| seen.borrow_mut().push((event.name, event.data)),
            move || *done.borrow_mut() = true,
        )
        .expect("stream");
    for _ in 0..50 {
        if *ended.borrow() {
            break;
        }
        sleep(20).await;
    }
    assert!(*ended.borrow());
    assert_eq!(
        *events.borrow(),
        vec![
            ("snapshot".to_owned(), "{\"calls\":[]}".to_owned()),
            ("call".to_owned(), "1".to_owned())
        ]
    );
}

#[wasm_bindgen_test]
async fn a_host_session_token_that_never_comes_counts_as_no_session() {
    let never = js_sys::Function::new_no_args("return new Promise(() => {});");
    let api = Api::new(String::new(), never).with_token_wait(50);
    let reply = api.json("GET", "/never-sent", None).await;
    assert_eq!(reply.err(), Some(RequestError::NoSession));
    // A promise that settles in time is used.
    let later = js_sys::Function::new_no_args(
        "return new Promise((ok) => setTimeout(() => ok('test-session'), 10));",
    );
    let api = Api::new(String::new(), later).with_token_wait(5_000);
    let reply = api
        .json("GET", "data:application/json,%7B%22ok%22:true%7D", None)
        .await
        .expect("answered");
    assert_eq!(reply.status, 200);
}

/// Bytes of linear memory the module has grown to.
fn linear_memory_bytes() -> u32 {
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .expect("memory")
        .buffer()
        .dyn_into::<js_sys::ArrayBuffer>()
        .expect("buffer")
        .byte_length()
}

/// One round of allocations of every size class the module makes (a byte, a frame, a page, an
/// SDP-sized string, blocks past the 64 KiB wasm page) plus a vector grown one push at a time;
/// checks each comes back aligned and keeps what was written, then frees them all.
fn allocate_a_round(seed: u8) {
    let sizes = [1usize, 7, 64, 500, 4_096, 65_536, 200_000];
    let blocks: Vec<Vec<u8>> = sizes
        .iter()
        .zip(0u8..)
        .map(|(&size, offset)| vec![seed.wrapping_add(offset); size])
        .collect();
    for (block, offset) in blocks.iter().zip(0u8..) {
        assert!(block.iter().all(|&byte| byte == seed.wrapping_add(offset)));
    }
    let mut grown = Vec::new();
    for n in 0..50_000u32 {
        grown.push(n);
    }
    assert!(grown.iter().zip(0u32..).all(|(&a, b)| a == b));
    let words = vec![u64::MAX; 33];
    assert_eq!(words.as_ptr() as usize % std::mem::align_of::<u64>(), 0);
    let text: String = std::iter::repeat_n("v=0\r\n", 2_000).collect();
    assert_eq!(text.len(), 10_000);
}

/// The module's allocator (TLSF, src/lib.rs) reuses what is freed: once warmed up, fifty more
/// rounds of the same allocations leave linear memory exactly as large as it was.
#[wasm_bindgen_test]
fn the_allocator_keeps_contents_intact_and_reuses_freed_memory() {
    for seed in 0..3 {
        allocate_a_round(seed);
    }
    let warmed_up = linear_memory_bytes();
    for seed in 3..53 {
        allocate_a_round(seed);
    }
    assert_eq!(linear_memory_bytes(), warmed_up);
}

/// The panel's appointment time is the browser's local clock, as the page's list shows it (not
/// the UTC characters of the worker's RFC 3339 time).
#[wasm_bindgen_test]
fn the_appointment_time_is_read_in_the_browsers_time_zone() {
    let start = "2026-07-01T09:30:00Z";
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(start));
    let expected = format!("{:02}:{:02}", date.get_hours(), date.get_minutes());
    assert_eq!(
        web_client::glue::browser::local_clock(start),
        Some(expected)
    );
    let offset_minutes = date.get_timezone_offset();
    let utc = web_client::appointment::utc_clock(start);
    assert_eq!(
        web_client::glue::browser::local_clock(start) == utc,
        offset_minutes == 0.0,
        "local and UTC agree only where the offset is zero"
    );
    assert_eq!(web_client::glue::browser::local_clock("not a time"), None);
}
