//! An incremental Server-Sent Events parser: bytes arrive in arbitrary chunks (a fetch body
//! stream), complete events come out. Follows the WHATWG event-stream rules the worker's ledger
//! stream needs: `event:` and `data:` fields, multi-line data, comments, CRLF or LF line ends.

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
