//! The little of RFC 6455 the Kubernetes streaming protocols need (`v5.channel.k8s.io`,
//! `v4.channel.k8s.io`): the handshake's accept key, unmasked server frames, masked client
//! frames (with continuation), and the channel framing (first payload byte = stream:
//! 0 stdin, 1 stdout, 2 stderr, 3 error/`Status`, 4 resize, 255 close-stream in v5).
//!
//! Owns: frame encoding and decoding. May call: nothing but tokio I/O.

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt};

const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// A client frame larger than this ends the session (stdin comes in small chunks).
const MAX_FRAME: u64 = 16 * 1024 * 1024;

pub const OP_CONTINUATION: u8 = 0;
pub const OP_TEXT: u8 = 1;
pub const OP_BINARY: u8 = 2;
pub const OP_CLOSE: u8 = 8;
pub const OP_PING: u8 = 9;
pub const OP_PONG: u8 = 10;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{}{WS_GUID}", key.trim()).as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// The streaming subprotocols we speak, best first, picked from `Sec-WebSocket-Protocol`.
pub fn pick_protocol(offered: &str) -> Option<&'static str> {
    ["v5.channel.k8s.io", "v4.channel.k8s.io"]
        .into_iter()
        .find(|p| offered.split(',').any(|o| o.trim() == *p))
}

/// One unmasked (server) frame.
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= u16::MAX as usize => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A binary frame carrying `data` on stream `ch`.
pub fn channel(ch: u8, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(data.len() + 1);
    p.push(ch);
    p.extend_from_slice(data);
    frame(OP_BINARY, &p)
}

/// A close frame with status 1000 (normal).
pub fn close() -> Vec<u8> {
    frame(OP_CLOSE, &1000u16.to_be_bytes())
}

/// A complete client message (continuations joined; control frames returned as they come).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

async fn read_one<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(bool, u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).await?;
    let fin = head[0] & 0x80 != 0;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => u64::from(r.read_u16().await?),
        127 => r.read_u64().await?,
        n => u64::from(n),
    };
    if len > MAX_FRAME {
        return Err(std::io::Error::other("websocket frame too large"));
    }
    let mut mask = [0u8; 4];
    if masked {
        r.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok((fin, opcode, payload))
}

/// Reads client messages; keeps a fragmented message across control frames sent in its
/// middle.
pub struct MessageReader<R> {
    r: R,
    partial: Option<(u8, Vec<u8>)>,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    pub fn new(r: R) -> Self {
        MessageReader { r, partial: None }
    }

    /// The next message; `None` at end of stream.
    ///
    /// # Errors
    /// On I/O errors and oversized frames.
    pub async fn next(&mut self) -> std::io::Result<Option<Message>> {
        loop {
            let (fin, opcode, payload) = match read_one(&mut self.r).await {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            };
            if opcode >= OP_CLOSE {
                return Ok(Some(Message { opcode, payload }));
            }
            let (op, buf) = self.partial.get_or_insert_with(|| (opcode, Vec::new()));
            if opcode != OP_CONTINUATION {
                *op = opcode;
            }
            buf.extend_from_slice(&payload);
            if buf.len() as u64 > MAX_FRAME {
                return Err(std::io::Error::other("websocket message too large"));
            }
            if fin {
                let (opcode, payload) = self.partial.take().unwrap_or_default();
                return Ok(Some(Message { opcode, payload }));
            }
        }
    }
}

/// The closing `Status` (channel 3) of an exec: success, or the exit code as a cause.
pub fn exit_status(code: u32) -> serde_json::Value {
    if code == 0 {
        return serde_json::json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success"});
    }
    serde_json::json!({
        "kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
        "message": format!("command terminated with non-zero exit code: error executing command [command], exit code {code}"),
        "reason":"NonZeroExitCode",
        "details":{"causes":[{"reason":"ExitCode","message": code.to_string()}]}
    })
}

/// A failure `Status` (channel 3) with a message.
pub fn failure_status(message: &str) -> serde_json::Value {
    serde_json::json!({
        "kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
        "message": message, "reason":"InternalError", "code": 500
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![
            if fin { 0x80 } else { 0 } | opcode,
            0x80 | payload.len() as u8,
        ];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn short_and_medium_frames_carry_their_length() {
        assert_eq!(frame(2, b"ab"), vec![0x82, 2, b'a', b'b']);
        let f = frame(2, &[0u8; 300]);
        assert_eq!(&f[..4], &[0x82, 126, 1, 44]);
        assert_eq!(f.len(), 304);
    }

    #[tokio::test]
    async fn masked_fragments_are_joined_and_pings_pass_through() {
        let mut wire = masked(false, OP_BINARY, b"\x00he");
        wire.extend(masked(true, OP_PING, b"p"));
        wire.extend(masked(true, OP_CONTINUATION, b"llo"));
        let mut r = MessageReader::new(&wire[..]);
        let ping = r.next().await.unwrap().unwrap();
        assert_eq!((ping.opcode, ping.payload.as_slice()), (OP_PING, &b"p"[..]));
        let m = r.next().await.unwrap().unwrap();
        assert_eq!(
            (m.opcode, m.payload.as_slice()),
            (OP_BINARY, &b"\x00hello"[..])
        );
        assert_eq!(r.next().await.unwrap(), None);
    }

    #[test]
    fn accept_key_matches_the_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn non_zero_exit_is_reported_as_an_exit_code_cause() {
        let s = exit_status(3);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(exit_status(0)["status"], "Success");
        assert_eq!(
            pick_protocol("v4.channel.k8s.io, v5.channel.k8s.io"),
            Some("v5.channel.k8s.io")
        );
    }
}
