//! A JSON object written member by member into a byte buffer, for the hottest documents:
//! token claims, token answers and introspection answers.
//!
//! Their members are ids, numbers and tokens, none of which needs escaping. Through serde, each
//! of them was still scanned byte by byte for characters to escape, the buffer grew in steps,
//! and `json!` maps allocated a node per member: together more CPU per guest grant than
//! AES-GCM. Strings that could need escaping still go through serde_json, so the output is
//! always what serde_json would write for the same members in the same order (unit tests and
//! the callers' tests compare the two).

use uuid::Uuid;

/// A JSON object being written. Member names must be plain ASCII without quotes or
/// backslashes (they are the callers' literals).
#[derive(Debug)]
pub struct ObjectWriter {
    out: Vec<u8>,
    empty: bool,
}

impl ObjectWriter {
    /// Starts an object in a buffer of `capacity` bytes (a good guess saves regrowing).
    pub fn with_capacity(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        ObjectWriter { out, empty: true }
    }

    fn name(&mut self, name: &str) -> &mut Vec<u8> {
        debug_assert!(!name.bytes().any(needs_escape), "member names are plain");
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        &mut self.out
    }

    /// A string member.
    pub fn str(&mut self, name: &str, value: &str) -> &mut Self {
        let out = self.name(name);
        string(out, value);
        self
    }

    /// A string member, or `null`.
    pub fn opt_str(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(name, v),
            None => self.null(name),
        }
    }

    /// A `null` member.
    pub fn null(&mut self, name: &str) -> &mut Self {
        self.name(name).extend_from_slice(b"null");
        self
    }

    /// A boolean member.
    pub fn bool(&mut self, name: &str, value: bool) -> &mut Self {
        let text: &[u8] = if value { b"true" } else { b"false" };
        self.name(name).extend_from_slice(text);
        self
    }

    /// An integer member.
    pub fn int(&mut self, name: &str, value: i64) -> &mut Self {
        let out = self.name(name);
        out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// A UUID member, in its hyphenated lowercase form (as serde writes a `Uuid`).
    pub fn uuid(&mut self, name: &str, id: &Uuid) -> &mut Self {
        let out = self.name(name);
        uuid(out, id);
        self
    }

    /// A UUID member, or `null`.
    pub fn opt_uuid(&mut self, name: &str, id: Option<&Uuid>) -> &mut Self {
        match id {
            Some(id) => self.uuid(name, id),
            None => self.null(name),
        }
    }

    /// An array of UUIDs.
    pub fn uuids<'a>(&mut self, name: &str, ids: impl IntoIterator<Item = &'a Uuid>) -> &mut Self {
        let out = self.name(name);
        out.push(b'[');
        for (i, id) in ids.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            uuid(out, id);
        }
        out.push(b']');
        self
    }

    /// Closes the object and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

fn uuid(out: &mut Vec<u8>, id: &Uuid) {
    out.push(b'"');
    out.extend_from_slice(
        id.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    out.push(b'"');
}

/// Whether any byte of `bytes` satisfies `pred`, checked 16 bytes at a time without an early
/// exit inside each block, a shape the compiler reliably turns into vector compares. A plain
/// `any` (or `str::contains` with a set of chars) looks at one byte per step, which for a
/// 1 KB token cost about as much as serde_json's escaping.
pub fn any_byte(bytes: &[u8], pred: impl Fn(u8) -> bool) -> bool {
    let mut blocks = bytes.chunks_exact(16);
    for block in &mut blocks {
        if block.iter().fold(false, |hit, &b| hit | pred(b)) {
            return true;
        }
    }
    blocks.remainder().iter().any(|&b| pred(b))
}

/// Appends `s` as a JSON string: copied as it is when nothing in it needs escaping, through
/// serde_json otherwise.
fn string(out: &mut Vec<u8>, s: &str) {
    if any_byte(s.as_bytes(), needs_escape) {
        serde_json::to_writer(out, s).expect("writing to a Vec cannot fail");
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn any_byte_looks_at_every_byte() {
        let text = b"abcdefghijklmnopqrstuvwxyz0123456789";
        for len in 0..=text.len() {
            for at in 0..len {
                let mut t = text[..len].to_vec();
                t[at] = b'%';
                assert!(any_byte(&t, |b| b == b'%'), "{len} {at}");
            }
            assert!(!any_byte(&text[..len], |b| b == b'%'), "{len}");
        }
    }

    #[test]
    fn writes_what_serde_json_writes() {
        let ids = [Uuid::new_v4(), Uuid::new_v4()];
        for text in [
            "eyJhbGciOiJkaXIifQ..aGk.Y3Q.dGFn",
            "",
            "a \"quoted\" \\ back",
            "tab\tnew\nline\u{1}\u{1f}",
            "é ünï €",
        ] {
            let mut w = ObjectWriter::with_capacity(0);
            w.bool("active", true)
                .str("text", text)
                .opt_str("none", None)
                .int("min", i64::MIN)
                .int("zero", 0)
                .uuid("id", &ids[0])
                .uuids("ids", &ids)
                .uuids("no_ids", &[])
                .opt_uuid("app", None)
                .bool("off", false);
            let expected = json!({
                "active": true,
                "text": text,
                "none": null,
                "min": i64::MIN,
                "zero": 0,
                "id": ids[0],
                "ids": ids,
                "no_ids": [],
                "app": null,
                "off": false,
            });
            let written: serde_json::Value = serde_json::from_slice(&w.finish()).unwrap();
            assert_eq!(written, expected);
        }
        // Byte for byte, in the order given.
        let mut w = ObjectWriter::with_capacity(8);
        w.str("b", "x\"y").int("a", -5).opt_uuid("c", Some(&ids[1]));
        assert_eq!(
            String::from_utf8(w.finish()).unwrap(),
            format!(r#"{{"b":"x\"y","a":-5,"c":"{}"}}"#, ids[1])
        );
        assert_eq!(ObjectWriter::with_capacity(0).finish(), b"{}");
    }
}
