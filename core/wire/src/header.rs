//! The 19-octet message header (RFC 4271 §4.1) and stream framing.

use crate::notification::{Notification, code};

/// Octets in the fixed header: marker, length, type.
pub const HEADER_LEN: usize = 19;
/// Largest message without the Extended Message capability.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest message with the Extended Message capability (RFC 8654).
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;
/// The all-ones marker.
pub const MARKER: [u8; 16] = [0xff; 16];

/// The message types Starling knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Open = 1,
    Update = 2,
    Notification = 3,
    Keepalive = 4,
    RouteRefresh = 5,
}

impl MessageType {
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::Open,
            2 => Self::Update,
            3 => Self::Notification,
            4 => Self::Keepalive,
            5 => Self::RouteRefresh,
            _ => return None,
        })
    }

    /// Smallest legal length of a whole message of this type.
    fn min_len(self) -> usize {
        match self {
            Self::Open => 29,
            Self::Update => 23,
            Self::Notification => 21,
            Self::Keepalive => HEADER_LEN,
            Self::RouteRefresh => 23,
        }
    }
}

/// A validated header: the message type and the whole message's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: MessageType,
    pub len: usize,
}

/// Look at the front of a receive buffer. Returns `Ok(None)` until a whole
/// header has arrived, then the header once it is valid; the caller waits
/// until `len` octets are buffered and hands them to `Message::decode`.
///
/// Errors carry the exact NOTIFICATION of RFC 4271 §6.1.
pub fn peek_header(buf: &[u8], max_len: usize) -> Result<Option<Header>, Notification> {
    let Some(fixed) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let (marker, rest) = fixed.split_at(16);
    if marker != MARKER {
        return Err(Notification::new(
            code::MESSAGE_HEADER,
            code::header::CONNECTION_NOT_SYNCHRONIZED,
        ));
    }
    let [len_hi, len_lo, kind] = [rest[0], rest[1], rest[2]];
    let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    let bad_length = || {
        Notification::with_data(
            code::MESSAGE_HEADER,
            code::header::BAD_MESSAGE_LENGTH,
            vec![len_hi, len_lo],
        )
    };
    if !(HEADER_LEN..=max_len).contains(&len) {
        return Err(bad_length());
    }
    let Some(kind) = MessageType::from_u8(kind) else {
        return Err(Notification::with_data(
            code::MESSAGE_HEADER,
            code::header::BAD_MESSAGE_TYPE,
            vec![kind],
        ));
    };
    let too_long_for_type = match kind {
        MessageType::Keepalive => len != HEADER_LEN,
        // OPEN is exchanged before Extended Message is negotiated.
        MessageType::Open => len > MAX_MESSAGE_LEN,
        _ => false,
    };
    if len < kind.min_len() || too_long_for_type {
        return Err(bad_length());
    }
    Ok(Some(Header { kind, len }))
}

/// Write a header for a message of `len` octets in total.
pub(crate) fn write_header(out: &mut Vec<u8>, kind: MessageType, len: u16) {
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(kind as u8);
}

/// Patch the length field of a message that starts at `start` in `out`.
pub(crate) fn patch_len(out: &mut [u8], start: usize, len: u16) {
    if let Some(field) = out.get_mut(start + 16..start + 18) {
        field.copy_from_slice(&len.to_be_bytes());
    }
}
