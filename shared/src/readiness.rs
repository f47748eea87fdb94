//! Whether this browser can place a call, from facts the browser module observed.
//!
//! The module reports what it saw ([`BrowserFacts`]); [`assess`] turns that into a list of checks
//! with plain-language messages and one verdict, so the rules are tested without a browser.

use crate::json::Json;

/// The state of the microphone permission as the Permissions API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MicrophonePermission {
    Granted,
    /// The browser will ask when the call starts.
    Prompt,
    Denied,
    /// The Permissions API cannot answer for the microphone (e.g. older Safari/Firefox).
    Unknown,
}

impl MicrophonePermission {
    /// Maps the Permissions API's state string; anything unexpected is `Unknown`.
    pub fn from_permission_state(state: &str) -> Self {
        match state {
            "granted" => Self::Granted,
            "prompt" => Self::Prompt,
            "denied" => Self::Denied,
            _ => Self::Unknown,
        }
    }
}

/// What the browser module observed about this browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrowserFacts {
    /// The page is a secure context (HTTPS or localhost), which getUserMedia requires.
    pub secure_context: bool,
    /// `RTCPeerConnection` exists.
    pub webrtc: bool,
    /// `navigator.mediaDevices.getUserMedia` exists.
    pub get_user_media: bool,
    pub microphone: MicrophonePermission,
}

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    Pass,
    /// Calls can still be placed, but the clinician should know (e.g. a prompt will appear).
    Warn,
    /// Browser calls cannot be placed; the manual-dial fallback applies.
    Fail,
}

/// One line of the readiness report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Stable machine-readable name, e.g. `webrtc`.
    pub name: &'static str,
    pub outcome: CheckOutcome,
    /// A plain-language sentence for the clinician.
    pub message: &'static str,
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    /// Ready, but the browser will ask for the microphone when the call starts.
    ReadyAfterPrompt,
    /// Browser calls are not possible here; dial the patient's number by hand.
    ManualDialOnly,
}

/// The readiness report the page renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessReport {
    pub verdict: Verdict,
    pub summary: &'static str,
    pub checks: Vec<Check>,
}

impl CheckOutcome {
    /// The outcome's code in the page's report: `pass`, `warn` or `fail`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

impl Verdict {
    /// The verdict's code in the page's report, kebab-case.
    pub fn code(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::ReadyAfterPrompt => "ready-after-prompt",
            Self::ManualDialOnly => "manual-dial-only",
        }
    }
}

impl ReadinessReport {
    /// The report as the page receives it: `{verdict, summary, checks: [{name, outcome,
    /// message}]}`, codes in kebab-case.
    pub fn to_json(&self) -> Json {
        let checks = self.checks.iter().map(|check| {
            Json::object([
                ("name", check.name.into()),
                ("outcome", check.outcome.code().into()),
                ("message", check.message.into()),
            ])
        });
        Json::object([
            ("verdict", self.verdict.code().into()),
            ("summary", self.summary.into()),
            ("checks", Json::Array(checks.collect())),
        ])
    }
}

fn check(name: &'static str, ok: bool, pass: &'static str, fail: &'static str) -> Check {
    Check {
        name,
        outcome: if ok {
            CheckOutcome::Pass
        } else {
            CheckOutcome::Fail
        },
        message: if ok { pass } else { fail },
    }
}

/// Applies the readiness rules to what the browser observed.
pub fn assess(facts: BrowserFacts) -> ReadinessReport {
    let microphone = match facts.microphone {
        MicrophonePermission::Granted => Check {
            name: "microphone",
            outcome: CheckOutcome::Pass,
            message: "Microphone access is allowed.",
        },
        MicrophonePermission::Prompt => Check {
            name: "microphone",
            outcome: CheckOutcome::Warn,
            message: "The browser will ask for the microphone when you start a call.",
        },
        MicrophonePermission::Unknown => Check {
            name: "microphone",
            outcome: CheckOutcome::Warn,
            message: "This browser cannot tell whether the microphone is allowed; it may ask when you start a call.",
        },
        MicrophonePermission::Denied => Check {
            name: "microphone",
            outcome: CheckOutcome::Fail,
            message: "Microphone access is blocked. Allow it in the browser's site settings, or dial the patient's number by hand.",
        },
    };
    let checks = vec![
        check(
            "secure-context",
            facts.secure_context,
            "The page is served securely.",
            "The page is not served over HTTPS, so the browser will not give it the microphone.",
        ),
        check(
            "webrtc",
            facts.webrtc,
            "This browser supports WebRTC calls.",
            "This browser does not support WebRTC calls. Use a current Chrome, Edge, Firefox or Safari, or dial by hand.",
        ),
        check(
            "get-user-media",
            facts.get_user_media,
            "This browser can use a microphone.",
            "This browser cannot use a microphone for calls. Dial the patient's number by hand.",
        ),
        microphone,
    ];
    let verdict = if checks.iter().any(|c| c.outcome == CheckOutcome::Fail) {
        Verdict::ManualDialOnly
    } else if checks.iter().any(|c| c.outcome == CheckOutcome::Warn) {
        Verdict::ReadyAfterPrompt
    } else {
        Verdict::Ready
    };
    let summary = match verdict {
        Verdict::Ready => "Ready for browser calls.",
        Verdict::ReadyAfterPrompt => {
            "Ready for browser calls once you allow the microphone."
        }
        Verdict::ManualDialOnly => {
            "Browser calls are not available here: the patient's number will be shown for dialing by hand."
        }
    };
    ReadinessReport {
        verdict,
        summary,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(
        secure_context: bool,
        webrtc: bool,
        get_user_media: bool,
        microphone: MicrophonePermission,
    ) -> BrowserFacts {
        BrowserFacts {
            secure_context,
            webrtc,
            get_user_media,
            microphone,
        }
    }

    #[test]
    fn verdicts_follow_the_weakest_check() {
        use MicrophonePermission::*;
        use Verdict::*;
        let table = [
            (facts(true, true, true, Granted), Ready),
            (facts(true, true, true, Prompt), ReadyAfterPrompt),
            (facts(true, true, true, Unknown), ReadyAfterPrompt),
            (facts(true, true, true, Denied), ManualDialOnly),
            (facts(false, true, true, Granted), ManualDialOnly),
            (facts(true, false, true, Granted), ManualDialOnly),
            (facts(true, true, false, Prompt), ManualDialOnly),
        ];
        for (input, expected) in table {
            assert_eq!(assess(input).verdict, expected, "{input:?}");
        }
    }

    #[test]
    fn a_failed_check_says_what_to_do() {
        let report = assess(facts(true, false, true, MicrophonePermission::Granted));
        let webrtc = report.checks.iter().find(|c| c.name == "webrtc").unwrap();
        assert_eq!(webrtc.outcome, CheckOutcome::Fail);
        assert!(webrtc.message.contains("dial by hand"));
        assert!(report.summary.contains("by hand"));
    }

    #[test]
    fn permission_states_map_from_the_permissions_api() {
        assert_eq!(
            MicrophonePermission::from_permission_state("granted"),
            MicrophonePermission::Granted
        );
        assert_eq!(
            MicrophonePermission::from_permission_state("denied"),
            MicrophonePermission::Denied
        );
        assert_eq!(
            MicrophonePermission::from_permission_state("prompt"),
            MicrophonePermission::Prompt
        );
        assert_eq!(
            MicrophonePermission::from_permission_state("weird"),
            MicrophonePermission::Unknown
        );
    }

    #[test]
    fn report_serialises_with_kebab_case_codes() {
        let report = assess(facts(true, true, true, MicrophonePermission::Prompt));
        let json: serde_json::Value = serde_json::from_str(&report.to_json().to_string()).unwrap();
        assert_eq!(json["verdict"], "ready-after-prompt");
        assert_eq!(json["checks"][3]["outcome"], "warn");
        assert_eq!(json["checks"][3]["name"], "microphone");
        assert_eq!(
            json["checks"].as_array().map(Vec::len),
            Some(report.checks.len())
        );
        assert_eq!(json["summary"], report.summary);
        let denied = assess(facts(true, true, true, MicrophonePermission::Denied)).to_json();
        assert_eq!(
            denied.get("verdict").and_then(Json::as_str),
            Some("manual-dial-only")
        );
        assert_eq!(
            assess(facts(true, true, true, MicrophonePermission::Granted))
                .to_json()
                .get("verdict"),
            Some(&Json::from("ready"))
        );
    }
}
