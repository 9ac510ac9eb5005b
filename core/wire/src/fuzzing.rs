//! Entry points shared by the cargo-fuzz targets and the corpus replay test
//! on stable, so both exercise exactly the same code. Each asserts the
//! codec's invariants (by panicking, which is how fuzzers see a failure): no panic, and anything accepted re-encodes to
//! something that decodes to the same value.

use crate::context::Context;
use crate::header::peek_header;
use crate::message::Message;
use crate::open::Open;
use crate::update::decode_update;

/// Session contexts the fuzzers cycle through, picked by the first byte.
fn context(selector: u8) -> Context {
    let add_path = if selector & 8 != 0 {
        crate::PerFamily::BOTH
    } else {
        crate::PerFamily::NONE
    };
    Context {
        four_octet_as: selector & 1 == 0,
        ebgp: selector & 2 != 0,
        peer_as: 64512,
        extended_message: selector & 4 != 0,
        add_path_receive: add_path,
        add_path_send: add_path,
        extended_next_hop: selector & 16 != 0,
        mp_errors: if selector & 32 != 0 {
            crate::MpErrorHandling::DisableFamily
        } else {
            crate::MpErrorHandling::ResetSession
        },
        ..Context::default()
    }
}

/// A whole message, header included, under a context chosen by `data[0]`.
pub fn message(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let ctx = context(selector);
    if let Ok(Some(header)) = peek_header(bytes, ctx.max_message_len())
        && let Some(msg) = bytes.get(..header.len)
        && let Ok(decoded) = Message::decode(msg, &ctx)
    {
        round_trip(&decoded, &ctx);
    }
}

/// An UPDATE body (no header).
pub fn update(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let ctx = context(selector);
    if let Ok(parsed) = decode_update(body, &ctx) {
        let _ = parsed.update.withdrawals(true).count();
        let _ = parsed.update.end_of_rib();
        let msg = Message::Update(parsed.update.clone().into());
        round_trip(&msg, &ctx);
    }
}

/// An OPEN body (no header).
pub fn open(data: &[u8]) {
    if let Ok(open) = Open::decode(data) {
        let _ = open.asn();
        round_trip(&Message::Open(open), &Context::default());
    }
}

/// Differential: whatever decodes, encoding and decoding again must give
/// the same value, and a second encode the same bytes.
#[allow(clippy::panic)] // a panic is the fuzzer's failure signal
fn round_trip(msg: &Message, ctx: &Context) {
    let Ok(bytes) = msg.to_bytes(ctx) else { return };
    let again = match Message::decode(&bytes, ctx) {
        Ok(m) => m,
        Err(e) => panic!("re-encoded message does not decode: {e}\n{msg:?}\n{bytes:02x?}"),
    };
    let normalize = |m: &Message| match m {
        Message::Update(p) => {
            let mut u = p.update.clone();
            u.attributes.layout.clear();
            Message::Update(u.into())
        }
        other => other.clone(),
    };
    assert_eq!(
        normalize(&again),
        normalize(msg),
        "round trip changed the message"
    );
    let bytes2 = again.to_bytes(ctx).unwrap_or_default();
    assert_eq!(bytes, bytes2, "second encode differs");
}
