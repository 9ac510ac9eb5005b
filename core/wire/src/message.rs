//! Whole messages: header plus body, in and out.

use crate::EncodeError;
use crate::context::Context;
use crate::header::{HEADER_LEN, MessageType, patch_len, peek_header, write_header};
use crate::notification::{Notification, code};
use crate::open::Open;
use crate::route_refresh::RouteRefresh;
use crate::update::{ParsedUpdate, decode_update};
use crate::verdict::SessionReset;

/// A BGP message.
// UPDATE dominates traffic, so boxing it would cost an allocation on the
// common path to save space on the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    /// A decoded UPDATE with its RFC 7606 verdict. When encoding, only the
    /// `update` part is used.
    Update(ParsedUpdate),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

/// Why a message could not be accepted: the NOTIFICATION to send, and for
/// UPDATEs everything found on the way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed message: {0}")]
    Malformed(Notification),
    #[error(transparent)]
    Update(#[from] SessionReset),
}

impl DecodeError {
    /// The NOTIFICATION to send before closing the session.
    pub fn notification(&self) -> &Notification {
        match self {
            Self::Malformed(n) => n,
            Self::Update(reset) => &reset.notification,
        }
    }
}

impl Message {
    pub fn kind(&self) -> MessageType {
        match self {
            Self::Open(_) => MessageType::Open,
            Self::Update(_) => MessageType::Update,
            Self::Notification(_) => MessageType::Notification,
            Self::Keepalive => MessageType::Keepalive,
            Self::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Decode one whole message (header included). `buf` must hold exactly
    /// one message; use [`peek_header`] to find its end in a stream.
    pub fn decode(buf: &[u8], ctx: &Context) -> Result<Self, DecodeError> {
        let header = peek_header(buf, ctx.max_message_len())
            .map_err(DecodeError::Malformed)?
            .ok_or_else(|| bad_length(buf.len()))?;
        if header.len != buf.len() {
            return Err(bad_length(buf.len()));
        }
        let body = buf.get(HEADER_LEN..).unwrap_or_default();
        Ok(match header.kind {
            MessageType::Open => Self::Open(Open::decode(body).map_err(DecodeError::Malformed)?),
            MessageType::Update => Self::Update(decode_update(body, ctx)?),
            MessageType::Notification => {
                Self::Notification(Notification::decode(body).ok_or_else(|| bad_length(buf.len()))?)
            }
            MessageType::Keepalive => Self::Keepalive,
            MessageType::RouteRefresh => {
                Self::RouteRefresh(RouteRefresh::decode(body).ok_or_else(|| {
                    if ctx.enhanced_route_refresh {
                        DecodeError::Malformed(Notification::with_data(
                            code::ROUTE_REFRESH,
                            code::route_refresh::INVALID_MESSAGE_LENGTH,
                            buf.to_vec(),
                        ))
                    } else {
                        bad_length(buf.len())
                    }
                })?)
            }
        })
    }

    /// Append the encoded message to `out`.
    pub fn encode(&self, ctx: &Context, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if let Self::Update(parsed) = self {
            return parsed.update.encode(ctx, out);
        }
        let start = out.len();
        write_header(out, self.kind(), 0);
        match self {
            Self::Open(open) => open.encode_body(out)?,
            Self::Notification(n) => n.encode_body(out),
            Self::Keepalive => {}
            Self::RouteRefresh(rr) => rr.encode_body(out),
            Self::Update(_) => {} // encoded above
        }
        let len = out.len() - start;
        let limit = match self {
            Self::Open(_) | Self::Keepalive => crate::header::MAX_MESSAGE_LEN,
            _ => ctx.max_message_len(),
        };
        if len > limit {
            out.truncate(start);
            return Err(EncodeError::TooLarge(
                "message exceeds the session's maximum length",
            ));
        }
        patch_len(out, start, len as u16);
        Ok(())
    }

    /// Convenience: encode into a fresh buffer.
    pub fn to_bytes(&self, ctx: &Context) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(ctx, &mut out)?;
        Ok(out)
    }
}

fn bad_length(len: usize) -> DecodeError {
    let len = u16::try_from(len).unwrap_or(u16::MAX);
    DecodeError::Malformed(Notification::with_data(
        code::MESSAGE_HEADER,
        code::header::BAD_MESSAGE_LENGTH,
        len.to_be_bytes().to_vec(),
    ))
}
