//! The one JSON reader for request bodies: RFC 8259 JSON into a `serde_json::Value`, refusing
//! what a lenient parser would quietly resolve.
//!
//! - **Duplicate member names at any depth are refused.** RFC 8259 leaves their meaning to
//!   the implementation; serde_json keeps the last, many proxies, WAFs and other languages'
//!   parsers keep the first. A body like `{"username": "nobody", "username": "admin@local"}`
//!   then means one thing to whatever inspected it and another to Tessera (a parser
//!   differential), so it means nothing here.
//! - **Numbers beyond `f64` are reported by member**, not as a syntax error: `1e400` is valid
//!   JSON, and a client that sends it for `expire_at` deserves the 422 any other bad value
//!   gets, naming the field, rather than "Bad Request".
//! - Nesting is bounded ([`MAX_DEPTH`]), so a hostile `[[[[…` cannot exhaust the stack.
//!
//! Everything else is serde_json's own reading: the same strings (escapes, surrogate pairs,
//! no raw control characters), the same numbers (integers as `i64`/`u64` where they fit, else
//! `f64`), and trailing non-whitespace is an error.

use serde_json::{Map, Number, Value};

/// The deepest nesting of arrays and objects accepted (serde_json's own limit).
pub const MAX_DEPTH: usize = 128;

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON at all (or nested deeper than [`MAX_DEPTH`]).
    Syntax,
    /// An object names a member twice. `member` is the top-level member it occurs in (the
    /// duplicated name itself when the duplicate is at the top level).
    Duplicate {
        /// The top-level member the duplicate is in, or the duplicated top-level name.
        member: String,
    },
    /// A number too large for a 64-bit float. `member` is the top-level member it occurs in
    /// (empty when the whole body is that number).
    OutOfRange {
        /// The top-level member the number is in.
        member: String,
    },
}

/// Parses a whole body.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    // Valid UTF-8 up front, so that every slice taken between ASCII delimiters is a str.
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::Syntax)?;
    let mut p = Parser {
        text,
        b: bytes,
        i: 0,
        depth: 0,
        member: String::new(),
    };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.i != p.b.len() {
        return Err(JsonError::Syntax);
    }
    Ok(v)
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    depth: usize,
    /// The top-level member being read, for error reports.
    member: String,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), JsonError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(JsonError::Syntax)
        }
    }

    fn literal(&mut self, word: &str, v: Value) -> Result<Value, JsonError> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(JsonError::Syntax)
        }
    }

    fn value(&mut self) -> Result<Value, JsonError> {
        match self.peek().ok_or(JsonError::Syntax)? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(Value::String),
            b't' => self.literal("true", Value::Bool(true)),
            b'f' => self.literal("false", Value::Bool(false)),
            b'n' => self.literal("null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(JsonError::Syntax),
        }
    }

    fn enter(&mut self) -> Result<(), JsonError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(JsonError::Syntax);
        }
        self.i += 1;
        self.ws();
        Ok(())
    }

    fn object(&mut self) -> Result<Value, JsonError> {
        self.enter()?;
        let mut map = Map::new();
        if self.peek() == Some(b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Value::Object(map));
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(JsonError::Syntax);
            }
            let key = self.string()?;
            if self.depth == 1 {
                self.member.clone_from(&key);
            }
            self.ws();
            self.eat(b':')?;
            self.ws();
            let v = self.value()?;
            if map.contains_key(&key) {
                return Err(JsonError::Duplicate {
                    member: self.member.clone(),
                });
            }
            map.insert(key, v);
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(JsonError::Syntax),
            }
        }
        self.depth -= 1;
        Ok(Value::Object(map))
    }

    fn array(&mut self) -> Result<Value, JsonError> {
        self.enter()?;
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b']') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(JsonError::Syntax),
            }
        }
        self.depth -= 1;
        Ok(Value::Array(items))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self.b.get(self.i..self.i + 4).ok_or(JsonError::Syntax)?;
        let mut n = 0u32;
        for &d in digits {
            n = n * 16 + (d as char).to_digit(16).ok_or(JsonError::Syntax)?;
        }
        self.i += 4;
        Ok(n)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.i += 1; // the opening quote
        let mut out = String::new();
        loop {
            let start = self.i;
            while let Some(c) = self.peek() {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.push_str(&self.text[start..self.i]);
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let esc = self.peek().ok_or(JsonError::Syntax)?;
                    self.i += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                // A high surrogate must be followed by an escaped low one.
                                if !self.b[self.i..].starts_with(b"\\u") {
                                    return Err(JsonError::Syntax);
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(JsonError::Syntax);
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            // A lone low surrogate is not a character.
                            out.push(char::from_u32(code).ok_or(JsonError::Syntax)?);
                        }
                        _ => return Err(JsonError::Syntax),
                    }
                }
                // A raw control character, or the end of the input inside a string.
                _ => return Err(JsonError::Syntax),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(JsonError::Syntax),
        }
        let mut integral = true;
        if self.peek() == Some(b'.') {
            self.i += 1;
            integral = false;
            if self.digits() == 0 {
                return Err(JsonError::Syntax);
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            integral = false;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(JsonError::Syntax);
            }
        }
        let lexeme = &self.text[start..self.i];
        // serde_json reads "-0" as the float -0.0; so does this reader.
        if integral && lexeme != "-0" {
            if let Ok(n) = lexeme.parse::<u64>() {
                return Ok(Value::Number(n.into()));
            }
            if let Ok(n) = lexeme.parse::<i64>() {
                return Ok(Value::Number(n.into()));
            }
        }
        // The grammar above is a subset of what `f64::from_str` accepts, so this parses; it
        // is infinite exactly when the number is beyond the largest float.
        lexeme
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| JsonError::OutOfRange {
                member: self.member.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes (xorshift), so the fuzz below is repeatable.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Equal values, floats within a rounding step: serde_json's default float reading is
    /// not always correctly rounded in the last bit, and `f64::from_str` is.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                x == y || (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()) * 2.0
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{}"#,
            r#"[]"#,
            r#" {"a": [1, -2, 3.5, -0.0, 1e3, 1E-3, 18446744073709551615, -9223372036854775808], "b": {"c": null, "d": true, "e": false}} "#,
            r#""\u00e9\ud83d\ude00 \n\t\"\\\/""#,
            r#"{"allowed_addresses":["0b1c0f7e-5a7b-4c54-9d5e-0c7d9b1f2a3e"],"expire_at":1700000000}"#,
            r#"123456789012345678901234567890"#,
            r#"-123456789012345678901234567890"#,
            r#"1e-400"#,
            r#"{"Kelvin \u212a": "\u212aate"}"#,
        ] {
            let ours = parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
        }
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        for text in [
            "",
            "{",
            "}",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "tru",
            "nul",
            "\"abc",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"a\u{1}b\"",
            "{} {}",
            "[1] x",
            "NaN",
            "Infinity",
            "'a'",
        ] {
            assert_eq!(parse(text.as_bytes()), Err(JsonError::Syntax), "{text:?}");
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text:?}");
        }
        assert_eq!(parse(b"\"\xff\""), Err(JsonError::Syntax));
    }

    #[test]
    fn refuses_duplicate_names_at_any_depth_naming_the_top_level_member() {
        let top = r#"{"username":"nobody","username":"admin@local","password":"x"}"#;
        assert_eq!(
            parse(top.as_bytes()),
            Err(JsonError::Duplicate {
                member: "username".into()
            })
        );
        let deep = r#"{"a": 1, "room": {"x": [{"k": 1, "k": 2}]}}"#;
        assert_eq!(
            parse(deep.as_bytes()),
            Err(JsonError::Duplicate {
                member: "room".into()
            })
        );
        // The same name through an escape is the same name.
        let escaped = r#"{"token": "a", "t\u006fken": "b"}"#;
        assert!(matches!(
            parse(escaped.as_bytes()),
            Err(JsonError::Duplicate { .. })
        ));
        // Equal names in different objects are not duplicates.
        assert!(parse(br#"{"a": {"k": 1}, "b": {"k": 1}}"#).is_ok());
    }

    #[test]
    fn numbers_beyond_a_float_name_their_member() {
        assert_eq!(
            parse(br#"{"expire_at": 1e400}"#),
            Err(JsonError::OutOfRange {
                member: "expire_at".into()
            })
        );
        assert_eq!(
            parse(br#"{"data": {"n": [-1e309]}}"#),
            Err(JsonError::OutOfRange {
                member: "data".into()
            })
        );
        let long = format!("{{\"n\": 1{}}}", "0".repeat(400));
        assert!(matches!(
            parse(long.as_bytes()),
            Err(JsonError::OutOfRange { .. })
        ));
        // Large but finite stays a number, as serde_json reads it.
        assert_eq!(
            parse(b"1e308").unwrap(),
            serde_json::from_str::<Value>("1e308").unwrap()
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(parse(deep.as_bytes()), Err(JsonError::Syntax));
        // Far deeper than the stack could take if the bound were missing.
        let hostile = "[".repeat(60_000);
        assert_eq!(parse(hostile.as_bytes()), Err(JsonError::Syntax));
    }

    /// Arbitrary bytes and mutations of valid bodies: never a panic, and wherever serde_json
    /// and this reader both accept, they agree; this reader accepts nothing serde_json
    /// refuses except numbers it reports as out of range... which serde_json also refuses.
    #[test]
    fn fuzz_agrees_with_serde_json_and_never_panics() {
        let seeds: [&[u8]; 4] = [
            br#"{"reference":"kate@example.com","expire_at":1700000000,"profile":{"a":[1,2.5,"x\u00e9"]}}"#,
            br#"{"allowed_addresses":["0b1c0f7e-5a7b-4c54-9d5e-0c7d9b1f2a3e","x"],"expire_at":"2030-01-01T00:00:00Z"}"#,
            br#"[true,false,null,-0,1e10,"\ud83d\ude00"]"#,
            br#""plain""#,
        ];
        let alphabet = b"{}[]\":,0123456789-+.eE \\untrfalse\x00\xff\xc3\xa9";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..40_000 {
            let mut input: Vec<u8> = if round % 4 == 0 {
                (0..rng.below(64))
                    .map(|_| alphabet[rng.below(alphabet.len())])
                    .collect()
            } else {
                seeds[rng.below(seeds.len())].to_vec()
            };
            for _ in 0..=rng.below(3) {
                if input.is_empty() {
                    break;
                }
                let at = rng.below(input.len());
                match rng.below(4) {
                    0 => input[at] = alphabet[rng.below(alphabet.len())],
                    1 => {
                        input.remove(at);
                    }
                    2 => input.insert(at, alphabet[rng.below(alphabet.len())]),
                    _ => input.truncate(at),
                }
            }
            let ours = parse(&input);
            let theirs = serde_json::from_slice::<Value>(&input);
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => assert!(
                    same(a, b),
                    "{a} != {b} for {:?}",
                    String::from_utf8_lossy(&input)
                ),
                (Ok(_), Err(e)) => panic!(
                    "accepted what serde_json refuses ({e}): {:?}",
                    String::from_utf8_lossy(&input)
                ),
                // serde_json keeps the last duplicate; this reader refuses.
                (Err(JsonError::Duplicate { .. }), Ok(_)) => {}
                (Err(e), Ok(_)) => panic!(
                    "refused ({e:?}) what serde_json reads: {:?}",
                    String::from_utf8_lossy(&input)
                ),
                (Err(_), Err(_)) => {}
            }
        }
    }
}
