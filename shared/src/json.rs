//! JSON without serde: a small value type, a strict parser (RFC 8259) and a compact writer.
//!
//! The browser module speaks JSON (signaling frames, the API's replies, the events it hands to
//! the page) and nothing more elaborate, so it uses this instead of serde_json, which with the
//! float formatting its error messages pull in was about a fifth of the module. Numbers are kept
//! as the text they were written as: nothing here parses or prints a float, and a number passes
//! through unchanged. The server side keeps serde_json for its own documents.

use core::fmt::{self, Write};
use thiserror::Error;

/// How deeply arrays and objects may nest; parsing refuses a deeper text (serde_json's limit
/// too), so a hostile frame cannot exhaust the stack.
pub const MAX_DEPTH: usize = 127;

/// A JSON value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Json {
    #[default]
    Null,
    Bool(bool),
    /// A number as written: text already checked against JSON's number grammar.
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Members in the order written. A repeated key is kept; lookups find the last, as
    /// `JSON.parse` and serde_json do.
    Object(Vec<(String, Json)>),
}

/// Why a text is not JSON: what was wrong and the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not JSON: {reason} at byte {offset}")]
pub struct JsonError {
    pub reason: JsonFault,
    pub offset: usize,
}

/// What was wrong, as a value: its words are only in [`JsonFault::describe`], so a build that
/// never prints an error (the browser module) does not carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonFault {
    TextAfterValue,
    UnknownWord,
    EndsBeforeValue,
    UnexpectedCharacter,
    NumberWithoutDigits,
    FractionWithoutDigits,
    ExponentWithoutDigits,
    ShortUnicodeEscape,
    LoneLeadingSurrogate,
    UnpairedLeadingSurrogate,
    LoneTrailingSurrogate,
    InvalidUnicodeEscape,
    UnclosedString,
    UnknownEscape,
    ControlCharacter,
    NotUtf8,
    TooDeep,
    ArrayWithoutSeparator,
    KeyNotString,
    KeyWithoutColon,
    ObjectWithoutSeparator,
}

impl JsonFault {
    pub fn describe(self) -> &'static str {
        match self {
            Self::TextAfterValue => "text after the value",
            Self::UnknownWord => "an unknown word",
            Self::EndsBeforeValue => "the text ends where a value should be",
            Self::UnexpectedCharacter => "an unexpected character",
            Self::NumberWithoutDigits => "a number without digits",
            Self::FractionWithoutDigits => "a number without digits after its point",
            Self::ExponentWithoutDigits => "a number without digits in its exponent",
            Self::ShortUnicodeEscape => "a \\u escape without four hex digits",
            Self::LoneLeadingSurrogate => "a lone leading surrogate",
            Self::UnpairedLeadingSurrogate => "a leading surrogate without its trailing one",
            Self::LoneTrailingSurrogate => "a lone trailing surrogate",
            Self::InvalidUnicodeEscape => "an invalid \\u escape",
            Self::UnclosedString => "a string without its closing quote",
            Self::UnknownEscape => "an unknown escape",
            Self::ControlCharacter => "a control character in a string",
            Self::NotUtf8 => "a string that is not UTF-8",
            Self::TooDeep => "nesting deeper than 127 levels",
            Self::ArrayWithoutSeparator => "an array without ',' or ']'",
            Self::KeyNotString => "an object key that is not a string",
            Self::KeyWithoutColon => "an object key without ':'",
            Self::ObjectWithoutSeparator => "an object without ',' or '}'",
        }
    }
}

impl fmt::Display for JsonFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl Json {
    /// Parses one JSON value; whitespace may surround it, nothing else may follow.
    pub fn parse(text: &str) -> Result<Self, JsonError> {
        let mut parser = Parser {
            text,
            bytes: text.as_bytes(),
            at: 0,
        };
        let value = parser.value(0)?;
        parser.skip_whitespace();
        if parser.at == parser.bytes.len() {
            Ok(value)
        } else {
            Err(parser.error(JsonFault::TextAfterValue))
        }
    }

    /// An object with these members, in this order.
    pub fn object<const N: usize>(members: [(&str, Json); N]) -> Self {
        Self::object_of(Vec::from(members))
    }

    /// [`Json::object`]'s work, written once rather than once per member count.
    fn object_of(members: Vec<(&str, Json)>) -> Self {
        Self::Object(
            members
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value))
                .collect(),
        )
    }

    /// An object's member (the last, if the key repeats); `None` for a missing key or a value
    /// that is not an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Self::Object(members) => members
                .iter()
                .rev()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(value) => Some(*value),
            _ => None,
        }
    }

    /// A number written as a whole number (no fraction, no exponent) that fits a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Number(text) if text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
            _ => None,
        }
    }

    /// A number written as a whole number (no fraction, no exponent) that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Number(text)
                if text
                    .strip_prefix('-')
                    .unwrap_or(text)
                    .bytes()
                    .all(|b| b.is_ascii_digit()) =>
            {
                text.parse().ok()
            }
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Self::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }
}

impl From<&str> for Json {
    fn from(text: &str) -> Self {
        Self::String(text.to_owned())
    }
}

impl From<String> for Json {
    fn from(text: String) -> Self {
        Self::String(text)
    }
}

impl From<&String> for Json {
    fn from(text: &String) -> Self {
        Self::String(text.clone())
    }
}

impl From<bool> for Json {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

macro_rules! json_from_integer {
    ($($integer:ty),*) => {$(
        impl From<$integer> for Json {
            fn from(value: $integer) -> Self {
                Self::Number(value.to_string())
            }
        }
    )*};
}
json_from_integer!(u16, u32, u64, i32, i64, usize);

impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Null, Into::into)
    }
}

impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(items: Vec<T>) -> Self {
        Self::Array(items.into_iter().map(Into::into).collect())
    }
}

/// A serde_json value as a [`Json`] (numbers keep serde_json's text for them), for the server
/// side and tests, which build values with serde_json.
impl From<serde_json::Value> for Json {
    fn from(value: serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::Null => Self::Null,
            Value::Bool(value) => Self::Bool(value),
            Value::Number(number) => Self::Number(number.to_string()),
            Value::String(text) => Self::String(text),
            Value::Array(items) => Self::Array(items.into_iter().map(Self::from).collect()),
            Value::Object(members) => Self::Object(
                members
                    .into_iter()
                    .map(|(key, value)| (key, Self::from(value)))
                    .collect(),
            ),
        }
    }
}

/// Writes `text` as a JSON string: quotes, backslashes and control characters escaped, the rest
/// as it is (as serde_json and `JSON.stringify` write it).
fn write_string(out: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    out.write_char('"')?;
    let mut plain_from = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.write_str(text.get(plain_from..index).unwrap_or_default())?;
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.write_str("\\u00")?;
            out.write_char(char::from(HEX[usize::from(byte >> 4)]))?;
            out.write_char(char::from(HEX[usize::from(byte & 0xf)]))?;
        } else {
            out.write_str(escape)?;
        }
        plain_from = index + 1;
    }
    out.write_str(text.get(plain_from..).unwrap_or_default())?;
    out.write_char('"')
}

/// The compact text: no whitespace, members in order.
impl fmt::Display for Json {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => out.write_str("null"),
            Self::Bool(true) => out.write_str("true"),
            Self::Bool(false) => out.write_str("false"),
            Self::Number(text) => out.write_str(text),
            Self::String(text) => write_string(out, text),
            Self::Array(items) => {
                out.write_char('[')?;
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.write_char(',')?;
                    }
                    item.fmt(out)?;
                }
                out.write_char(']')
            }
            Self::Object(members) => {
                out.write_char('{')?;
                for (index, (key, value)) in members.iter().enumerate() {
                    if index > 0 {
                        out.write_char(',')?;
                    }
                    write_string(out, key)?;
                    out.write_char(':')?;
                    value.fmt(out)?;
                }
                out.write_char('}')
            }
        }
    }
}

/// A recursive-descent parser over the text's bytes.
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, reason: JsonFault) -> JsonError {
        JsonError {
            reason,
            offset: self.at,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Consumes the literal `expected` (`null`, `true` or `false`) or fails.
    fn literal(&mut self, expected: &[u8], value: Json) -> Result<Json, JsonError> {
        if self.bytes.get(self.at..self.at + expected.len()) == Some(expected) {
            self.at += expected.len();
            Ok(value)
        } else {
            Err(self.error(JsonFault::UnknownWord))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, JsonError> {
        self.skip_whitespace();
        match self.peek() {
            None => Err(self.error(JsonFault::EndsBeforeValue)),
            Some(b'n') => self.literal(b"null", Json::Null),
            Some(b't') => self.literal(b"true", Json::Bool(true)),
            Some(b'f') => self.literal(b"false", Json::Bool(false)),
            Some(b'"') => self.string().map(Json::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => self.array(depth + 1),
            Some(b'{') => self.object(depth + 1),
            Some(_) => Err(self.error(JsonFault::UnexpectedCharacter)),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, kept as text.
    fn number(&mut self) -> Result<Json, JsonError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error(JsonFault::NumberWithoutDigits)),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.error(JsonFault::FractionWithoutDigits));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.error(JsonFault::ExponentWithoutDigits));
            }
        }
        // A number's text is ASCII, so its ends are character boundaries.
        let text = self.text.get(start..self.at).unwrap_or_default();
        Ok(Json::Number(text.to_owned()))
    }

    /// Four hex digits of a `\u` escape.
    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut value = 0;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| self.error(JsonFault::ShortUnicodeEscape))?;
            value = value * 16 + digit;
            self.at += 1;
        }
        Ok(value)
    }

    /// The character of a `\u` escape (the `\u` consumed), joining a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.at..self.at + 2) != Some(b"\\u") {
                    return Err(self.error(JsonFault::LoneLeadingSurrogate));
                }
                self.at += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error(JsonFault::UnpairedLeadingSurrogate));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error(JsonFault::LoneTrailingSurrogate)),
            other => other,
        };
        char::from_u32(code).ok_or_else(|| self.error(JsonFault::InvalidUnicodeEscape))
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.at += 1; // the opening quote
        let mut text = Vec::new();
        loop {
            let Some(byte) = self.peek() else {
                return Err(self.error(JsonFault::UnclosedString));
            };
            if byte <= 0x1f {
                return Err(self.error(JsonFault::ControlCharacter));
            }
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    let simple = match self.peek() {
                        Some(b'"') => Some('"'),
                        Some(b'\\') => Some('\\'),
                        Some(b'/') => Some('/'),
                        Some(b'b') => Some('\u{8}'),
                        Some(b'f') => Some('\u{c}'),
                        Some(b'n') => Some('\n'),
                        Some(b'r') => Some('\r'),
                        Some(b't') => Some('\t'),
                        Some(b'u') => None,
                        _ => return Err(self.error(JsonFault::UnknownEscape)),
                    };
                    self.at += 1;
                    let escaped = match simple {
                        Some(escaped) => escaped,
                        None => self.unicode_escape()?,
                    };
                    text.extend_from_slice(escaped.encode_utf8(&mut [0u8; 4]).as_bytes());
                }
                other => text.push(other),
            }
        }
        // The input is a &str and escapes add whole characters, so this is UTF-8.
        String::from_utf8(text).map_err(|_| self.error(JsonFault::NotUtf8))
    }

    /// Enters an array or object (its opening byte next): refuses nesting past [`MAX_DEPTH`],
    /// consumes the opening byte, and says whether `close` follows at once (an empty one).
    fn open(&mut self, depth: usize, close: u8) -> Result<bool, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error(JsonFault::TooDeep));
        }
        self.at += 1;
        self.skip_whitespace();
        let empty = self.peek() == Some(close);
        if empty {
            self.at += 1;
        }
        Ok(empty)
    }

    /// After an item or member: `true` when a `,` says another follows, `false` at `close`.
    fn another(&mut self, close: u8, reason: JsonFault) -> Result<bool, JsonError> {
        self.skip_whitespace();
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                Ok(true)
            }
            Some(byte) if byte == close => {
                self.at += 1;
                Ok(false)
            }
            _ => Err(self.error(reason)),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, JsonError> {
        let mut items = Vec::new();
        if !self.open(depth, b']')? {
            loop {
                items.push(self.value(depth)?);
                if !self.another(b']', JsonFault::ArrayWithoutSeparator)? {
                    break;
                }
            }
        }
        Ok(Json::Array(items))
    }

    fn object(&mut self, depth: usize) -> Result<Json, JsonError> {
        let mut members = Vec::new();
        if !self.open(depth, b'}')? {
            loop {
                self.skip_whitespace();
                if self.peek() != Some(b'"') {
                    return Err(self.error(JsonFault::KeyNotString));
                }
                let key = self.string()?;
                self.skip_whitespace();
                if self.peek() != Some(b':') {
                    return Err(self.error(JsonFault::KeyWithoutColon));
                }
                self.at += 1;
                members.push((key, self.value(depth)?));
                if !self.another(b'}', JsonFault::ObjectWithoutSeparator)? {
                    break;
                }
            }
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_refusal_says_what_was_wrong_and_where() {
        let too_deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
        let cases: &[(&str, JsonFault, usize)] = &[
            ("", JsonFault::EndsBeforeValue, 0),
            ("[1,", JsonFault::EndsBeforeValue, 3),
            ("nul", JsonFault::UnknownWord, 0),
            ("[1] 2", JsonFault::TextAfterValue, 4),
            ("01", JsonFault::TextAfterValue, 1),
            ("-", JsonFault::NumberWithoutDigits, 1),
            ("1.", JsonFault::FractionWithoutDigits, 2),
            ("1e+", JsonFault::ExponentWithoutDigits, 3),
            ("[1,]", JsonFault::UnexpectedCharacter, 3),
            ("[1 2]", JsonFault::ArrayWithoutSeparator, 3),
            ("{a:1}", JsonFault::KeyNotString, 1),
            ("{\"a\" 1}", JsonFault::KeyWithoutColon, 5),
            ("{\"a\":1 \"b\":2}", JsonFault::ObjectWithoutSeparator, 7),
            ("\"open", JsonFault::UnclosedString, 5),
            ("\"tab\there\"", JsonFault::ControlCharacter, 4),
            (&too_deep, JsonFault::TooDeep, 127),
        ];
        for (input, fault, offset) in cases {
            let error = Json::parse(input).expect_err(input);
            assert_eq!((error.reason, error.offset), (*fault, *offset), "{input}");
            assert_eq!(
                error.to_string(),
                format!("not JSON: {} at byte {offset}", fault.describe())
            );
        }
        for (input, fault) in [
            ("\"\\x\"", JsonFault::UnknownEscape),
            ("\"\\u12\"", JsonFault::ShortUnicodeEscape),
            ("\"\\ud800\"", JsonFault::LoneLeadingSurrogate),
            ("\"\\udc00\"", JsonFault::LoneTrailingSurrogate),
            ("\"\\ud800\\u0041\"", JsonFault::UnpairedLeadingSurrogate),
        ] {
            assert_eq!(
                Json::parse(input).map_err(|e| e.reason),
                Err(fault),
                "{input}"
            );
        }
    }

    #[test]
    fn parses_and_writes_a_table_of_texts() {
        // (input, the compact text, or None when it must be refused)
        let cases: &[(&str, Option<&str>)] = &[
            ("null", Some("null")),
            (" true ", Some("true")),
            ("false", Some("false")),
            ("0", Some("0")),
            ("-0", Some("-0")),
            ("12.50e+3", Some("12.50e+3")),
            ("1E-7", Some("1E-7")),
            ("18446744073709551616", Some("18446744073709551616")),
            (
                r#""a\"b\\c\/d\n\u00e9\ud83d\ude00""#,
                Some("\"a\\\"b\\\\c/d\\né😀\""),
            ),
            ("\"\\u0001\"", Some("\"\\u0001\"")),
            (
                r#"{"a":1,"b":[true,null,{}],"a":2}"#,
                Some(r#"{"a":1,"b":[true,null,{}],"a":2}"#),
            ),
            ("[ 1 , 2 ]", Some("[1,2]")),
            ("", None),
            ("nul", None),
            ("01", None),
            ("1.", None),
            (".5", None),
            ("1e", None),
            ("-", None),
            ("+1", None),
            ("[1,]", None),
            ("{\"a\" 1}", None),
            ("{\"a\":1,}", None),
            ("{a:1}", None),
            ("\"tab\there\"", None),
            ("\"\\x\"", None),
            ("\"\\ud800\"", None),
            ("\"\\udc00\"", None),
            ("\"\\ud800\\u0041\"", None),
            ("\"open", None),
            ("[1] 2", None),
            ("NaN", None),
        ];
        for (input, expected) in cases {
            let parsed = Json::parse(input);
            assert_eq!(
                parsed.as_ref().ok().map(Json::to_string).as_deref(),
                *expected,
                "{input}"
            );
        }
    }

    #[test]
    fn lookups_and_conversions() {
        let value = Json::parse(r#"{"n":42,"neg":-7,"f":1.5,"e":1e2,"big":18446744073709551616,"s":"x","b":true,"a":[1],"k":1,"k":2}"#).unwrap();
        assert_eq!(value.get("n").and_then(Json::as_u64), Some(42));
        assert_eq!(value.get("neg").and_then(Json::as_u64), None);
        assert_eq!(value.get("neg").and_then(Json::as_i64), Some(-7));
        assert_eq!(value.get("f").and_then(Json::as_u64), None);
        assert_eq!(value.get("e").and_then(Json::as_u64), None);
        assert_eq!(value.get("big").and_then(Json::as_u64), None);
        assert_eq!(value.get("s").and_then(Json::as_str), Some("x"));
        assert_eq!(value.get("b").and_then(Json::as_bool), Some(true));
        assert_eq!(
            value.get("a").and_then(Json::as_array).map(<[Json]>::len),
            Some(1)
        );
        assert_eq!(
            value.get("k").and_then(Json::as_u64),
            Some(2),
            "the last of a repeated key"
        );
        assert_eq!(value.get("missing"), None);
        assert_eq!(Json::from("x").get("x"), None);

        let built = Json::object([("a", 1u32.into()), ("b", Json::from(None::<String>))]);
        assert_eq!(built.to_string(), r#"{"a":1,"b":null}"#);
        assert_eq!(Json::from(vec!["p", "q"]).to_string(), r#"["p","q"]"#);
        assert_eq!(Json::from(-3i64).to_string(), "-3");
        let from_serde = Json::from(serde_json::json!({"n": 1.5, "a": [null, "x"]}));
        assert_eq!(from_serde.to_string(), r#"{"a":[null,"x"],"n":1.5}"#);
    }

    #[test]
    fn nesting_is_limited() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(Json::parse(&deep(MAX_DEPTH)).is_ok());
        assert!(Json::parse(&deep(MAX_DEPTH + 1)).is_err());
        assert!(Json::parse(&"{\"a\":".repeat(MAX_DEPTH + 1)).is_err());
        // The same limit as serde_json's.
        for n in [MAX_DEPTH, MAX_DEPTH + 1] {
            let theirs = serde_json::from_str::<serde_json::Value>(&deep(n));
            assert_eq!(theirs.is_ok(), Json::parse(&deep(n)).is_ok(), "{n}");
        }
    }

    /// Any serde_json value, with numbers of every shape and strings with escapes.
    fn any_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
            "[\"\\\\\u{0}-\u{1f}a-é😀]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z\"\\\\]{0,4}", inner, 0..6)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever serde_json writes, compact or pretty, parses here and is written back to
        /// text serde_json reads as the same value.
        #[test]
        fn round_trips_what_serde_json_writes(value in any_value(), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&value).unwrap() } else { value.to_string() };
            let parsed = Json::parse(&text).unwrap();
            let written = parsed.to_string();
            // serde_json's own float parsing is not exact, so its reading of its own text is
            // the value to match.
            let expected = serde_json::from_str::<serde_json::Value>(&text).unwrap();
            prop_assert_eq!(serde_json::from_str::<serde_json::Value>(&written).unwrap(), expected);
            if !pretty {
                prop_assert_eq!(written, text, "compact text is written back byte for byte");
            }
        }

        /// Texts near JSON: accepted exactly when serde_json accepts them (numbers too large for
        /// an f64, which serde_json refuses and this keeps as text, aside).
        #[test]
        fn accepts_what_serde_json_accepts(text in "[ \\[\\]{}:,\"\\\\a-c0-9.eE+\\-ntrufls]{0,24}") {
            let ours = Json::parse(&text);
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(theirs) => {
                    let ours = ours.unwrap();
                    prop_assert_eq!(serde_json::from_str::<serde_json::Value>(&ours.to_string()).unwrap(), theirs);
                }
                Err(error) if error.to_string().contains("number out of range") => {}
                Err(_) => prop_assert!(ours.is_err(), "accepted {:?}", text),
            }
        }
    }
}
