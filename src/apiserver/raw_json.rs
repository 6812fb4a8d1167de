//! Stored JSON objects as bytes: a validating scanner that finds the spans of an object's
//! members, and the splice that writes a stored object (or its `metadata`) into a response
//! with `metadata.resourceVersion` set to the key's mod revision, without decoding it into a
//! `serde_json::Value` and encoding it again.
//!
//! The scanner is at least as strict as `serde_json` (anything it is unsure about, such as
//! exponents, surrogate escapes or deep nesting, is reported as not splicable), so a caller
//! that falls back to the decoding path ([`super::object::from_kv`]) on `None` answers
//! exactly as before. Objects written by this server come from `serde_json::to_vec`, so the
//! fallback is for foreign writes through the etcd API.
//!
//! Owns: byte-level JSON scanning and splicing. Calls nothing outside this module.

use std::ops::Range;

/// Deepest nesting the scanner follows (serde_json stops at 128).
const MAX_DEPTH: usize = 100;

/// One `"key": value` of an object: the key's raw text (between the quotes) and the value's
/// byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub key: Range<usize>,
    pub value: Range<usize>,
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// End of the string starting at `i` (on its opening quote), and whether it had escapes.
fn skip_string(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut i = i + 1;
    let mut escaped = false;
    loop {
        // The common case: a run of plain bytes (a tight loop once optimised).
        i += b
            .get(i..)?
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        match b[i] {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                match *b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    b'u' => {
                        let hex = b.get(i + 2..i + 6)?;
                        let s = std::str::from_utf8(hex).ok()?;
                        let cp = u16::from_str_radix(s, 16).ok()?;
                        // Surrogate pairs are legal but rare; leave them to serde_json.
                        if (0xD800..=0xDFFF).contains(&cp) {
                            return None;
                        }
                        i += 6;
                    }
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
}

fn skip_digits(b: &[u8], mut i: usize) -> (usize, usize) {
    let start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    (i, i - start)
}

fn skip_number(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let (end, n) = skip_digits(b, i);
    // Leading zeros are invalid; very long integers may overflow f64 in serde_json.
    if n == 0 || (n > 1 && b[i] == b'0') || n > 300 {
        return None;
    }
    i = end;
    if b.get(i) == Some(&b'.') {
        let (end, n) = skip_digits(b, i + 1);
        if n == 0 || n > 300 {
            return None;
        }
        i = end;
    }
    // Exponents can leave f64's range; serde_json decides those.
    if matches!(b.get(i), Some(b'e' | b'E')) {
        return None;
    }
    Some(i)
}

fn skip_literal(b: &[u8], i: usize, lit: &[u8]) -> Option<usize> {
    (b.get(i..i + lit.len())? == lit).then_some(i + lit.len())
}

/// End of the JSON value starting at `i` (after whitespace).
fn skip_value(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    match *b.get(i)? {
        b'{' => members_from(b, i, depth, false, &mut |_| {}),
        b'[' => {
            let mut i = skip_ws(b, i + 1);
            if b.get(i) == Some(&b']') {
                return Some(i + 1);
            }
            loop {
                i = skip_ws(b, skip_value(b, i, depth + 1)?);
                match *b.get(i)? {
                    b',' => i = skip_ws(b, i + 1),
                    b']' => return Some(i + 1),
                    _ => return None,
                }
            }
        }
        b'"' => skip_string(b, i).map(|(end, _)| end),
        b't' => skip_literal(b, i, b"true"),
        b'f' => skip_literal(b, i, b"false"),
        b'n' => skip_literal(b, i, b"null"),
        b'-' | b'0'..=b'9' => skip_number(b, i),
        _ => None,
    }
}

/// Scans the object starting at `i` (on `{`), calling `each` per member; the end offset.
/// With `plain_keys`, keys with escapes are refused: the caller compares their raw text
/// (managed fields have escaped keys such as `k:{\"name\":\"c\"}`, but only deeper down).
fn members_from(
    b: &[u8],
    i: usize,
    depth: usize,
    plain_keys: bool,
    each: &mut dyn FnMut(Member),
) -> Option<usize> {
    let mut i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Some(i + 1);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (key_end, escaped) = skip_string(b, i)?;
        if escaped && plain_keys {
            return None;
        }
        let key = i + 1..key_end - 1;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, i + 1);
        let end = skip_value(b, start, depth + 1)?;
        each(Member {
            key,
            value: start..end,
        });
        i = skip_ws(b, end);
        match *b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// The members of the object `b[span]` when it is one valid JSON object (offsets into `b`).
/// `None` when it is not an object, not valid, or beyond what the scanner decides.
pub fn object_members(b: &[u8], span: Range<usize>) -> Option<Vec<Member>> {
    let text = b.get(span.clone())?;
    std::str::from_utf8(text).ok()?;
    // Bounded: nothing after the span may be read as part of it.
    let b = &b[..span.end];
    let start = skip_ws(b, span.start);
    if b.get(start) != Some(&b'{') {
        return None;
    }
    let mut out = Vec::with_capacity(8);
    let end = members_from(b, start, 0, true, &mut |m| out.push(m))?;
    (skip_ws(b, end) == span.end).then_some(out)
}

/// The one member named `key` (`Err` when it occurs more than once: serde_json would keep
/// the last, the splice cannot tell which one a client keeps).
fn find<'m>(b: &[u8], members: &'m [Member], key: &str) -> Result<Option<&'m Member>, ()> {
    let mut found = None;
    for m in members {
        if &b[m.key.clone()] == key.as_bytes() {
            if found.is_some() {
                return Err(());
            }
            found = Some(m);
        }
    }
    Ok(found)
}

/// A stored object scanned once: its members, and the members of its `metadata` object.
pub struct Stored {
    top: Vec<Member>,
    /// `metadata`'s span and members (`None` when the object has no `metadata`).
    meta: Option<(Range<usize>, Vec<Member>)>,
}

/// Scans a stored object; `None` when it is not splicable: not one valid object (as far as
/// the scanner decides), `metadata` not an object, or `metadata`/`resourceVersion` twice.
pub fn scan(b: &[u8]) -> Option<Stored> {
    std::str::from_utf8(b).ok()?;
    let start = skip_ws(b, 0);
    if b.get(start) != Some(&b'{') {
        return None;
    }
    let mut top = Vec::with_capacity(8);
    let end = members_from(b, start, 0, true, &mut |m| top.push(m))?;
    if skip_ws(b, end) != b.len() {
        return None;
    }
    let meta = match find(b, &top, "metadata").ok()? {
        None => None,
        Some(m) => {
            // Scanned a second time, but only the metadata, and only here.
            let members = object_members(b, m.value.clone())?;
            find(b, &members, "resourceVersion").ok()?;
            Some((m.value.clone(), members))
        }
    };
    Some(Stored { top, meta })
}

fn push_rv(out: &mut Vec<u8>, rev: i64) {
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(rev.to_string().as_bytes());
    out.push(b'"');
}

impl Stored {
    /// Writes `metadata` with `resourceVersion` = `rev` (replacing a stored one, else added
    /// first; `{"resourceVersion":…}` when the object has none), as the decoded object's.
    pub fn write_metadata(&self, b: &[u8], rev: i64, out: &mut Vec<u8>) {
        let Some((span, members)) = &self.meta else {
            out.push(b'{');
            push_rv(out, rev);
            out.push(b'}');
            return;
        };
        let stored_rv = members
            .iter()
            .find(|m| &b[m.key.clone()] == b"resourceVersion");
        match (stored_rv, members.first()) {
            (Some(m), _) => {
                out.extend_from_slice(&b[span.start..m.value.start]);
                out.push(b'"');
                out.extend_from_slice(rev.to_string().as_bytes());
                out.push(b'"');
                out.extend_from_slice(&b[m.value.end..span.end]);
            }
            (None, Some(first)) => {
                out.push(b'{');
                push_rv(out, rev);
                out.push(b',');
                // From the first key's opening quote.
                out.extend_from_slice(&b[first.key.start - 1..span.end]);
            }
            (None, None) => {
                out.push(b'{');
                push_rv(out, rev);
                out.push(b'}');
            }
        }
    }

    /// Writes the whole object with `metadata.resourceVersion` = `rev`, as
    /// [`super::object::from_kv`] presents it.
    pub fn write_object(&self, b: &[u8], rev: i64, out: &mut Vec<u8>) {
        match &self.meta {
            Some((span, _)) => {
                out.extend_from_slice(&b[..span.start]);
                self.write_metadata(b, rev, out);
                out.extend_from_slice(&b[span.end..]);
            }
            None => {
                out.extend_from_slice(b"{\"metadata\":");
                self.write_metadata(b, rev, out);
                match self.top.first() {
                    Some(first) => {
                        out.push(b',');
                        out.extend_from_slice(&b[first.key.start - 1..]);
                    }
                    None => out.push(b'}'),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// What the decoding path presents: the object with `metadata.resourceVersion` set.
    fn decoded(b: &[u8], rev: i64) -> Value {
        let mut v: Value = serde_json::from_slice(b).unwrap();
        crate::apiserver::object::set_resource_version(&mut v, rev);
        v
    }

    fn spliced(b: &[u8], rev: i64) -> Option<Value> {
        let mut out = Vec::new();
        scan(b)?.write_object(b, rev, &mut out);
        Some(serde_json::from_slice(&out).unwrap())
    }

    #[test]
    fn a_spliced_object_equals_the_decoded_one_with_or_without_a_stored_resource_version() {
        for raw in [
            r#"{"kind":"Pod","metadata":{"name":"a","namespace":"d"},"spec":{"x":[1,2.5,-3,true,false,null]}}"#,
            r#"{"kind":"Pod","metadata":{"name":"a","resourceVersion":"7"},"spec":{}}"#,
            r#"{"metadata":{"resourceVersion":"7","name":"a"}}"#,
            r#"{"metadata":{}}"#,
            r#"{"metadata": { "name" : "w s" } , "data" : {"k":"v\"\\\u00e9\n"} }"#,
            r#"{"kind":"ConfigMap"}"#,
            r#"{"metadata":{"managedFields":[{"fieldsV1":{"k:{\"name\":\"c\"}":{}}}]}}"#,
            r#"{}"#,
            r#"{"a":{"metadata":{"resourceVersion":"1"}},"metadata":{"labels":{"resourceVersion":"x"}}}"#,
        ] {
            assert_eq!(
                spliced(raw.as_bytes(), 42),
                Some(decoded(raw.as_bytes(), 42)),
                "{raw}"
            );
        }
    }

    #[test]
    fn unusual_or_invalid_objects_are_refused_not_spliced() {
        for raw in [
            r#"[1,2]"#,
            r#"{"metadata":null}"#,
            r#"{"metadata":"x"}"#,
            r#"{"metadata":{},"metadata":{}}"#,
            r#"{"metadata":{"resourceVersion":"1","resourceVersion":"2"}}"#,
            r#"{"a":1e400}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":01}"#,
            r#"{"a":1,}"#,
            r#"{"a":"x"} trailing"#,
            r#"{"a":"unterminated}"#,
            r#"{"k\"ey":1}"#,
            "{\"a\":\"ctl\u{1}\"}",
            r#"{"a":tru}"#,
        ] {
            assert_eq!(spliced(raw.as_bytes(), 1), None, "{raw}");
        }
        assert_eq!(spliced(b"{\"a\":\"\xff\"}", 1), None);
    }

    #[test]
    fn metadata_is_spliced_alone_for_table_rows() {
        for (raw, want) in [
            (
                r#"{"kind":"Pod","metadata":{"name":"a","uid":"u"},"spec":{}}"#,
                json!({"name": "a", "uid": "u", "resourceVersion": "9"}),
            ),
            (
                r#"{"metadata":{"resourceVersion":"1","name":"a"}}"#,
                json!({"name": "a", "resourceVersion": "9"}),
            ),
            (r#"{"metadata":{}}"#, json!({"resourceVersion": "9"})),
            (r#"{"spec":{}}"#, json!({"resourceVersion": "9"})),
        ] {
            let mut out = Vec::new();
            scan(raw.as_bytes())
                .unwrap()
                .write_metadata(raw.as_bytes(), 9, &mut out);
            let v: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v, want, "{raw}");
            assert_eq!(decoded(raw.as_bytes(), 9)["metadata"], want);
        }
    }
}
