//! Minimal BGP peers for load: connect, exchange OPENs, then either blast a
//! pre-encoded stream or count what arrives. They answer keepalives and
//! nothing else, so the instrument never limits the measurement.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use starling_wire::capability::Capability;
use starling_wire::{Context, Family, Message, Open, Update, peek_header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A third of the 90 s hold time every daemon here offers.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

pub(crate) struct Peer {
    pub(crate) stream: TcpStream,
    buf: Vec<u8>,
    ctx: Context,
}

impl Peer {
    /// Connect from `local` to `dut` as `asn` and reach Established,
    /// offering IPv4 unicast and the `extra` capabilities.
    pub(crate) async fn connect(
        local: Ipv4Addr,
        dut: SocketAddr,
        asn: u32,
        dut_as: u32,
        extra: &[Capability],
    ) -> anyhow::Result<Self> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let stream = loop {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::from((local, 0)))?;
            match socket.connect(dut).await {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e).with_context(|| format!("connecting to {dut}")),
            }
        };
        stream.set_nodelay(true)?;
        let ctx = Context {
            ebgp: asn != dut_as,
            peer_as: dut_as,
            enforce_first_as: false,
            ..Context::default()
        };
        let mut peer = Self {
            stream,
            buf: Vec::with_capacity(1 << 20),
            ctx,
        };
        let capabilities = [Capability::Multiprotocol(Family::IPV4_UNICAST)]
            .into_iter()
            .chain(extra.iter().cloned())
            .collect();
        let open = Open::new(asn, 240, local, capabilities);
        peer.stream
            .write_all(&Message::Open(open).to_bytes(&Context::default())?)
            .await?;
        loop {
            match peer.next().await? {
                Message::Open(_) => {
                    peer.stream
                        .write_all(&Message::Keepalive.to_bytes(&Context::default())?)
                        .await?;
                }
                Message::Keepalive => return Ok(peer),
                Message::Notification(n) => bail!("DUT refused the session: {n}"),
                _ => {}
            }
        }
    }

    /// The connection, for a caller that reads and writes it itself
    /// (the soak's peers). What was read past the DUT's KEEPALIVE is
    /// dropped: the caller only discards the DUT's UPDATEs.
    pub(crate) fn into_stream(self) -> TcpStream {
        self.stream
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        // Appended in place: no buffer zeroed per read, as a hundred
        // clients reading a hundred million prefixes would spend the
        // harness's CPU on it.
        self.buf.reserve(256 * 1024);
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            bail!("DUT closed the connection");
        }
        Ok(())
    }

    async fn next(&mut self) -> anyhow::Result<Message> {
        loop {
            if let Some(h) =
                peek_header(&self.buf, 65535).map_err(|n| anyhow::anyhow!("bad header: {n}"))?
                && self.buf.len() >= h.len
            {
                let bytes: Vec<u8> = self.buf.drain(..h.len).collect();
                return Message::decode(&bytes, &self.ctx).map_err(|e| anyhow::anyhow!("{e}"));
            }
            self.fill().await?;
        }
    }

    /// Count announced prefixes until `want` have arrived; returns when.
    /// `seen` follows the count, for a report when the wait times out.
    pub(crate) async fn count_until(
        &mut self,
        want: usize,
        seen: &std::sync::atomic::AtomicUsize,
    ) -> anyhow::Result<Instant> {
        self.count(0, |have| have >= want, seen).await
    }

    /// Count withdrawals of the `have` prefixes held until none is left;
    /// returns when.
    pub(crate) async fn count_down(
        &mut self,
        have: usize,
        seen: &std::sync::atomic::AtomicUsize,
    ) -> anyhow::Result<Instant> {
        self.count(have, |have| have == 0, seen).await
    }

    /// Follow the prefixes held, from `have`, until `done` says so.
    async fn count(
        &mut self,
        mut have: usize,
        done: impl Fn(usize) -> bool,
        seen: &std::sync::atomic::AtomicUsize,
    ) -> anyhow::Result<Instant> {
        self.follow_updates(|update| {
            let (announced, withdrawn) = count_prefixes(update.get(19..).unwrap_or_default())?;
            have += announced;
            have -= withdrawn.min(have);
            seen.store(have, std::sync::atomic::Ordering::Relaxed);
            Ok(done(have))
        })
        .await
    }

    /// Hand each UPDATE's prefixes to `update` (`true`: announced,
    /// `false`: withdrawn; each as its [`prefix_key`]) until it says it
    /// is done; returns when.
    pub(crate) async fn follow_prefixes(
        &mut self,
        mut update: impl FnMut(&[(bool, u64)]) -> bool,
    ) -> anyhow::Result<Instant> {
        let mut changes = Vec::new();
        self.follow_updates(|message| {
            changes.clear();
            for_each_prefix(message.get(19..).unwrap_or_default(), |announced, key| {
                changes.push((announced, key));
            })?;
            Ok(update(&changes))
        })
        .await
    }

    /// Send `stream`, then stay in the session and send it again each
    /// time the DUT asks for a ROUTE-REFRESH, until the session fails.
    /// What the DUT sends is read and discarded.
    pub(crate) async fn serve(&mut self, stream: &[u8]) -> anyhow::Result<Instant> {
        self.stream.write_all(stream).await?;
        self.follow(|kind, _| {
            Ok(if kind == ROUTE_REFRESH {
                Step::Send(stream)
            } else {
                Step::Continue
            })
        })
        .await
    }

    /// Decode every UPDATE and hand it to `done` until it says so;
    /// returns when.
    pub(crate) async fn follow_decoded(
        &mut self,
        mut done: impl FnMut(&Update) -> bool,
    ) -> anyhow::Result<Instant> {
        let ctx = self.ctx.clone();
        self.follow_updates(|bytes| match Message::decode(bytes, &ctx) {
            Ok(Message::Update(parsed)) => Ok(done(&parsed.update)),
            Ok(_) => Ok(false),
            Err(e) => bail!("the DUT sent a malformed UPDATE: {e}"),
        })
        .await
    }

    /// Stay in the session, reading and discarding, until it fails.
    pub(crate) async fn idle(&mut self) -> anyhow::Result<Instant> {
        self.follow_updates(|_| Ok(false)).await
    }

    /// Hand every UPDATE (the whole message) to `done` until it says so.
    async fn follow_updates(
        &mut self,
        mut done: impl FnMut(&[u8]) -> anyhow::Result<bool>,
    ) -> anyhow::Result<Instant> {
        self.follow(|kind, msg| {
            Ok(if kind == UPDATE && done(msg)? {
                Step::Done
            } else {
                Step::Continue
            })
        })
        .await
    }

    /// Hand every message but KEEPALIVEs and NOTIFICATIONs to `handle`
    /// (its type and the whole message) until it says it is done,
    /// answering KEEPALIVEs and sending our own; returns when.
    async fn follow<'s>(
        &mut self,
        mut handle: impl FnMut(u8, &[u8]) -> anyhow::Result<Step<'s>>,
    ) -> anyhow::Result<Instant> {
        let mut start = 0usize;
        // Our own KEEPALIVEs, as a real peer sends them: the daemon's hold
        // timer must not depend on how soon we read its.
        let mut keepalive_at = Instant::now() + KEEPALIVE_INTERVAL;
        loop {
            if Instant::now() >= keepalive_at {
                self.stream
                    .write_all(&Message::Keepalive.to_bytes(&Context::default())?)
                    .await?;
                keepalive_at = Instant::now() + KEEPALIVE_INTERVAL;
            }
            while let Some(h) = peek_header(self.buf.get(start..).unwrap_or_default(), 65535)
                .map_err(|n| anyhow::anyhow!("bad header: {n}"))?
            {
                let Some(msg) = self.buf.get(start..start + h.len) else {
                    break;
                };
                let finished = match msg.get(18).copied().unwrap_or_default() {
                    KEEPALIVE => {
                        self.stream
                            .write_all(&Message::Keepalive.to_bytes(&Context::default())?)
                            .await?;
                        false
                    }
                    NOTIFICATION => {
                        let why = Message::decode(msg, &self.ctx)
                            .map_or_else(|e| e.to_string(), |m| format!("{m:?}"));
                        bail!("the DUT sent a NOTIFICATION: {why}");
                    }
                    kind => match handle(kind, msg)? {
                        Step::Continue => false,
                        Step::Done => true,
                        Step::Send(bytes) => {
                            self.stream.write_all(bytes).await?;
                            false
                        }
                    },
                };
                start += h.len;
                if finished {
                    // What follows is for the next count.
                    self.buf.drain(..start);
                    return Ok(Instant::now());
                }
            }
            self.buf.drain(..start);
            start = 0;
            // The keepalive is due even while nothing arrives.
            tokio::select! {
                filled = self.fill() => filled?,
                () = tokio::time::sleep_until(keepalive_at.into()) => {}
            }
        }
    }
}

const UPDATE: u8 = 2;
const NOTIFICATION: u8 = 3;
const KEEPALIVE: u8 = 4;
const ROUTE_REFRESH: u8 = 5;

/// What [`Peer::follow`] does after a message.
enum Step<'s> {
    Continue,
    Done,
    /// Send these bytes, then go on.
    Send(&'s [u8]),
}

/// An IPv4 prefix as one number: the address's 32 bits over the length's
/// 8, so the sinks can keep a million of them in a set cheaply.
pub(crate) fn prefix_key(addr: Ipv4Addr, len: u8) -> u64 {
    (u64::from(u32::from(addr)) << 8) | u64::from(len)
}

/// Each announced (`true`) and withdrawn (`false`) IPv4 prefix of an
/// UPDATE body, as its [`prefix_key`], read from the classic fields
/// alone (no ADD-PATH).
fn for_each_prefix(body: &[u8], mut each: impl FnMut(bool, u64)) -> anyhow::Result<()> {
    let (withdrawn, nlri) = prefix_fields(body)?;
    for (announced, mut field) in [(false, withdrawn), (true, nlri)] {
        while let Some(&bits) = field.first() {
            let size = 1 + usize::from(bits).div_ceil(8);
            let bytes = field
                .get(1..size)
                .ok_or_else(|| anyhow::anyhow!("truncated prefix"))?;
            let mut octets = [0u8; 4];
            let n = bytes.len().min(4);
            octets[..n].copy_from_slice(&bytes[..n]);
            each(announced, prefix_key(Ipv4Addr::from(octets), bits));
            field = &field[size..];
        }
    }
    Ok(())
}

/// An UPDATE body's withdrawn-routes field and its NLRI.
fn prefix_fields(body: &[u8]) -> anyhow::Result<(&[u8], &[u8])> {
    let field = |at: usize| -> anyhow::Result<(&[u8], usize)> {
        let len = body
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or_else(|| anyhow::anyhow!("short UPDATE"))?;
        let bytes = body
            .get(at + 2..at + 2 + len)
            .ok_or_else(|| anyhow::anyhow!("short UPDATE"))?;
        Ok((bytes, at + 2 + len))
    };
    let (withdrawn, next) = field(0)?;
    let (_, nlri_at) = field(next)?;
    Ok((withdrawn, &body[nlri_at..]))
}

/// Announced and withdrawn IPv4 prefixes in an UPDATE body, counted from
/// the prefix fields alone: a reflector's clients receive a hundred
/// million of them, and a full decode would make the instrument the
/// bottleneck.
/// (No ADD-PATH, and IPv4 unicast travels in the classic fields.)
fn count_prefixes(body: &[u8]) -> anyhow::Result<(usize, usize)> {
    let (mut announced, mut withdrawn) = (0, 0);
    for_each_prefix(body, |is_announced, _| {
        if is_announced {
            announced += 1;
        } else {
            withdrawn += 1;
        }
    })?;
    Ok((announced, withdrawn))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use starling_wire::{Message, Nlri, Origin, PathAttributes, Prefix, Update};

    use super::*;

    #[test]
    fn counting_matches_a_full_decode() {
        let p = |s: &str| Nlri::new(s.parse::<Prefix>().expect("prefix"));
        let update = Update {
            withdrawn: vec![p("10.0.0.0/8")],
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(Default::default()),
                next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
                ..PathAttributes::default()
            },
            nlri: vec![
                p("0.0.0.0/0"),
                p("192.0.2.0/24"),
                p("198.51.100.7/32"),
                p("172.16.0.0/12"),
            ],
            ..Update::default()
        };
        let bytes = Message::Update(update.into())
            .to_bytes(&Context::default())
            .expect("encode");
        assert_eq!(count_prefixes(&bytes[19..]).expect("count"), (4, 1));
        assert!(count_prefixes(&bytes[19..bytes.len() - 1]).is_err());
    }
}
