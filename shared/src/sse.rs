//! An incremental Server-Sent Events parser: bytes arrive in arbitrary chunks (a fetch body
//! stream), complete events come out. Follows the WHATWG event-stream rules the worker's ledger
//! stream needs: `event:` and `data:` fields, multi-line data, comments, CRLF or LF line ends.
//! [`Watch`] keeps a reader's stream alive: reopened with backoff, dropped when it goes quiet.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, `message` when absent.
    pub name: String,
    pub data: String,
}

/// Largest line kept while waiting for its end; a longer one is dropped (a broken stream).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The parser's state between chunks.
#[derive(Debug, Default, Clone)]
pub struct Parser {
    line: Vec<u8>,
    name: Option<String>,
    data: Option<String>,
    skip_lf: bool,
    overflow: bool,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        for &byte in chunk {
            if self.skip_lf {
                self.skip_lf = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\r' | b'\n' => {
                    self.skip_lf = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if std::mem::take(&mut self.overflow) {
                        continue;
                    }
                    if let Some(event) = self.line_done(&String::from_utf8_lossy(&line)) {
                        events.push(event);
                    }
                }
                _ if self.overflow => {}
                _ if self.line.len() >= MAX_LINE_BYTES => {
                    self.line.clear();
                    self.overflow = true;
                }
                _ => self.line.push(byte),
            }
        }
        events
    }

    fn line_done(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            let data = self.data.take();
            let name = self.name.take();
            return data.map(|data| Event {
                name: name.unwrap_or_else(|| "message".to_owned()),
                data,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.name = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
        None
    }
}

/// The event the worker sends on an idle stream, every [`KEEP_ALIVE_MS`], so that a reader can
/// tell a quiet appointment from a dead connection.
pub const KEEP_ALIVE_EVENT: &str = "alive";
/// How often the worker sends [`KEEP_ALIVE_EVENT`].
pub const KEEP_ALIVE_MS: u64 = 25_000;
/// An open stream that has sent nothing for this long (two keep-alives missed) is taken for a
/// dead connection (a half-open socket after a sleep or a network change) and opened again.
pub const SILENCE_LIMIT_MS: u64 = 60_000;
const _: () = assert!(SILENCE_LIMIT_MS > 2 * KEEP_ALIVE_MS);
/// Waits before opening a closed stream again: the first after a stream that worked, then
/// longer after each attempt that delivered nothing (a refusal, an outage), the last repeated.
pub const REOPEN_BACKOFF_MS: [u64; 6] = [5_000, 10_000, 20_000, 40_000, 80_000, 120_000];

/// A reader's view of its event stream's health (sans-IO: the caller opens, drops and reports).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watch {
    /// When the open stream last delivered anything; `None` while closed.
    heard_at_ms: Option<u64>,
    /// Whether the open stream has delivered an event yet.
    delivered: bool,
    closed_at_ms: u64,
    /// Attempts in a row that closed without delivering anything.
    failures: u32,
}

impl Watch {
    /// A stream was just opened.
    pub fn opened(&mut self, now_ms: u64) {
        self.heard_at_ms = Some(now_ms);
        self.delivered = false;
    }

    /// The open stream delivered an event.
    pub fn heard(&mut self, now_ms: u64) {
        if self.heard_at_ms.is_some() {
            self.heard_at_ms = Some(now_ms);
            self.delivered = true;
            self.failures = 0;
        }
    }

    /// The stream ended, or was dropped for its silence.
    pub fn closed(&mut self, now_ms: u64) {
        if self.heard_at_ms.take().is_some() {
            if !self.delivered {
                self.failures = self.failures.saturating_add(1);
            }
            self.closed_at_ms = now_ms;
        }
    }

    /// Whether a stream is open.
    pub fn is_open(&self) -> bool {
        self.heard_at_ms.is_some()
    }

    /// Whether the open stream has been silent past [`SILENCE_LIMIT_MS`].
    pub fn gone_quiet(&self, now_ms: u64) -> bool {
        self.heard_at_ms
            .is_some_and(|heard| now_ms.saturating_sub(heard) >= SILENCE_LIMIT_MS)
    }

    /// Whether a closed stream is due to be opened again.
    pub fn reopen_due(&self, now_ms: u64) -> bool {
        let wait = crate::time::backoff_wait(&REOPEN_BACKOFF_MS, self.failures);
        !self.is_open() && now_ms >= self.closed_at_ms.saturating_add(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(name: &str, data: &str) -> Event {
        Event {
            name: name.into(),
            data: data.into(),
        }
    }

    #[test]
    fn parses_the_ledger_stream() {
        let table: &[(&str, Vec<Event>)] = &[
            (
                "event: call\ndata: {\"status\":\"ringing\"}\n\n",
                vec![event("call", "{\"status\":\"ringing\"}")],
            ),
            ("data: a\ndata: b\n\n", vec![event("message", "a\nb")]),
            (": keep-alive\n\n", vec![]),
            ("event: x\r\ndata:y\r\n\r\n", vec![event("x", "y")]),
            ("event: x\rdata: y\r\r", vec![event("x", "y")]),
            ("data: incomplete\n", vec![]),
            (
                "event: a\ndata: 1\n\nevent: b\ndata: 2\n\n",
                vec![event("a", "1"), event("b", "2")],
            ),
            ("retry: 10\nid: 3\ndata: z\n\n", vec![event("message", "z")]),
        ];
        for (input, expected) in table {
            assert_eq!(&Parser::new().feed(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn an_endless_line_is_dropped_and_the_stream_recovers() {
        let mut parser = Parser::new();
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        assert!(parser.feed(&long).is_empty());
        assert_eq!(parser.feed(b"\ndata: ok\n\n"), vec![event("message", "ok")]);
    }

    #[test]
    fn a_watched_stream_is_reopened_with_backoff_and_dropped_when_quiet() {
        // (what happens, at ms) → (open, quiet, reopen due) just after it.
        enum Step {
            Open,
            Heard,
            Closed,
            Check,
        }
        use Step::*;
        let table: &[(Step, u64, bool, bool, bool)] = &[
            (Open, 0, true, false, false),
            (Check, 59_999, true, false, false),
            (Check, 60_000, true, true, false),
            (Heard, 60_000, true, false, false),
            (Check, 99_999, true, false, false),
            // It worked: once closed, opened again after 5 s.
            (Closed, 100_000, false, false, false),
            (Check, 104_999, false, false, false),
            (Check, 105_000, false, false, true),
            // Attempts that deliver nothing wait 10 s, then 20 s…
            (Open, 105_000, true, false, false),
            (Closed, 105_100, false, false, false),
            (Check, 115_099, false, false, false),
            (Check, 115_100, false, false, true),
            (Open, 115_100, true, false, false),
            (Closed, 115_200, false, false, false),
            (Check, 135_199, false, false, false),
            (Check, 135_200, false, false, true),
            // …and one event starts the count again.
            (Open, 135_200, true, false, false),
            (Heard, 135_300, true, false, false),
            (Closed, 135_400, false, false, false),
            (Check, 140_400, false, false, true),
            // A close or an event reported for no open stream changes nothing.
            (Closed, 150_000, false, false, true),
            (Heard, 150_000, false, false, true),
        ];
        let mut watch = Watch::default();
        for (row, (step, at, open, quiet, due)) in table.iter().enumerate() {
            match step {
                Open => watch.opened(*at),
                Heard => watch.heard(*at),
                Closed => watch.closed(*at),
                Check => {}
            }
            let now = *at;
            assert_eq!(
                (
                    watch.is_open(),
                    watch.gone_quiet(now),
                    watch.reopen_due(now)
                ),
                (*open, *quiet, *due),
                "row {row}"
            );
        }
        // Failures in a row settle at the last wait.
        let mut watch = Watch::default();
        let mut now = 0;
        for _ in 0..20 {
            watch.opened(now);
            watch.closed(now);
            let wait = *REOPEN_BACKOFF_MS.last().unwrap_or(&0);
            now += wait;
        }
        assert!(watch.reopen_due(now));
        assert!(!watch.reopen_due(now - 1));
    }

    proptest! {
        #[test]
        fn chunking_never_changes_the_events(split in proptest::collection::vec(1usize..20, 0..30)) {
            let stream = "event: snapshot\ndata: {\"calls\":[]}\n\n: c\r\nevent: call\r\ndata: {\"a\":1}\r\ndata: 2\r\n\r\n";
            let whole = Parser::new().feed(stream.as_bytes());
            let mut parser = Parser::new();
            let mut pieces = Vec::new();
            let mut rest = stream.as_bytes();
            for n in split {
                let n = n.min(rest.len());
                let (head, tail) = rest.split_at(n);
                pieces.extend(parser.feed(head));
                rest = tail;
            }
            pieces.extend(parser.feed(rest));
            prop_assert_eq!(pieces, whole);
        }
    }
}
