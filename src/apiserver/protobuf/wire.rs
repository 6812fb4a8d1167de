//! Protobuf wire-format reading: tags, varints, fixed-width and length-delimited values.
//!
//! Owns: bounds-checked iteration over one message's fields. Calls nothing; every malformed
//! input is a [`ProtobufError`], never a panic.

use super::ProtobufError;

/// One field value as it appears on the wire.
#[derive(Clone, Copy, Debug)]
pub(super) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    /// Only skipped: no Kubernetes field is a 32-bit fixed type.
    Fixed32,
}

impl<'a> Value<'a> {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Value::Varint(_) => "varint",
            Value::Fixed64(_) => "fixed64",
            Value::Bytes(_) => "length-delimited",
            Value::Fixed32 => "fixed32",
        }
    }
}

/// Iterates the `(tag, value)` pairs of one encoded message.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or(ProtobufError::Truncated)?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(ProtobufError::Malformed("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtobufError> {
        let end = self.pos.checked_add(n).ok_or(ProtobufError::Truncated)?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(ProtobufError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], ProtobufError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// The next field, `None` at the end of the message.
    pub(super) fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, ProtobufError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag =
            u32::try_from(key >> 3).map_err(|_| ProtobufError::Malformed("field tag too large"))?;
        if tag == 0 {
            return Err(ProtobufError::Malformed("field tag 0"));
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(self.fixed::<8>()?)),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| ProtobufError::Truncated)?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
            _ => return Err(ProtobufError::Malformed("unsupported wire type (groups)")),
        };
        Ok(Some((tag, value)))
    }

    /// A packed run of varints (`repeated int32` sent packed).
    pub(super) fn packed_varints(buf: &'a [u8]) -> Result<Vec<u64>, ProtobufError> {
        let mut r = Reader::new(buf);
        let mut out = Vec::new();
        while r.pos < r.buf.len() {
            out.push(r.varint()?);
        }
        Ok(out)
    }
}
