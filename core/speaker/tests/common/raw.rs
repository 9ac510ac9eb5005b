//! A raw-byte BGP peer for tests: the codec builds the valid parts, the
//! test writes whatever else it wants.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use starling_wire::capability::{Capability, GracefulRestart, GracefulRestartFamily};
use starling_wire::{
    AsPath, Context, Family, Message, Nlri, Notification, Open, Origin, ParsedUpdate,
    PathAttributes, Prefix, Update, encode_end_of_rib, peek_header,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

pub struct RawPeer {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// The OPEN Starling sent.
    pub their_open: Option<Open>,
}

impl RawPeer {
    /// Connect from `local` to Starling and complete the OPEN exchange.
    pub async fn establish(local: [u8; 4], starling: SocketAddr) -> Self {
        Self::establish_with(local, starling, None).await
    }

    /// As `establish`, with a receive buffer of `rcvbuf` octets.
    pub async fn establish_with(local: [u8; 4], starling: SocketAddr, rcvbuf: Option<u32>) -> Self {
        Self::open(local, starling, rcvbuf, Vec::new()).await
    }

    /// As `establish`, offering these capabilities besides IPv4 unicast.
    pub async fn establish_offering(
        local: [u8; 4],
        starling: SocketAddr,
        extra: Vec<Capability>,
    ) -> Self {
        Self::open(local, starling, None, extra).await
    }

    /// As `establish_offering`, speaking as `asn` instead of 64512.
    pub async fn establish_as(
        local: [u8; 4],
        starling: SocketAddr,
        asn: u32,
        extra: Vec<Capability>,
    ) -> Self {
        Self::open_as(local, starling, None, extra, asn).await
    }

    async fn open(
        local: [u8; 4],
        starling: SocketAddr,
        rcvbuf: Option<u32>,
        extra: Vec<Capability>,
    ) -> Self {
        Self::open_as(local, starling, rcvbuf, extra, 64512).await
    }

    async fn exchange_opens(
        local: [u8; 4],
        starling: SocketAddr,
        rcvbuf: Option<u32>,
        extra: Vec<Capability>,
        asn: u32,
    ) -> Self {
        let socket = TcpSocket::new_v4().expect("socket");
        if let Some(size) = rcvbuf {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        socket.bind(SocketAddr::from((local, 0))).expect("bind");
        let stream = socket.connect(starling).await.expect("connect");
        let mut peer = Self {
            stream,
            buf: Vec::new(),
            their_open: None,
        };
        let open = Open::new(
            asn,
            90,
            Ipv4Addr::from(local),
            [Capability::Multiprotocol(Family::IPV4_UNICAST)]
                .into_iter()
                .chain(extra)
                .collect(),
        );
        peer.send(
            &Message::Open(open)
                .to_bytes(&Context::default())
                .expect("open"),
        )
        .await;
        let Message::Open(theirs) = peer.recv().await else {
            panic!("Starling answers with an OPEN");
        };
        peer.their_open = Some(theirs);
        peer
    }

    /// Connect from `local`, send an OPEN offering `extra`, and read
    /// Starling's OPEN: the session stands in OpenSent on our side.
    pub async fn open_only(local: [u8; 4], starling: SocketAddr, extra: Vec<Capability>) -> Self {
        Self::exchange_opens(local, starling, None, extra, 64512).await
    }

    async fn open_as(
        local: [u8; 4],
        starling: SocketAddr,
        rcvbuf: Option<u32>,
        extra: Vec<Capability>,
        asn: u32,
    ) -> Self {
        let mut peer = Self::exchange_opens(local, starling, rcvbuf, extra, asn).await;
        assert!(matches!(peer.recv().await, Message::Keepalive));
        peer.send(
            &Message::Keepalive
                .to_bytes(&Context::default())
                .expect("keepalive"),
        )
        .await;
        peer
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    pub async fn recv(&mut self) -> Message {
        timeout(Duration::from_secs(10), async {
            loop {
                if let Ok(Some(h)) = peek_header(&self.buf, 4096)
                    && self.buf.len() >= h.len
                {
                    let msg: Vec<u8> = self.buf.drain(..h.len).collect();
                    return Message::decode(&msg, &Context::external(64513))
                        .expect("Starling sends valid messages");
                }
                let mut chunk = [0u8; 4096];
                let n = self.stream.read(&mut chunk).await.expect("read");
                assert!(n > 0, "connection closed without a NOTIFICATION");
                self.buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .expect("a message within 10 s")
    }

    /// The next NOTIFICATION, skipping keepalives and updates.
    pub async fn notification(&mut self) -> Notification {
        loop {
            if let Message::Notification(n) = self.recv().await {
                return n;
            }
        }
    }
}

/// An UPDATE announcing `prefix` from AS 64512 with `next_hop`, as the
/// raw peers' default session (2-octet ASes) encodes it.
pub fn announce(prefix: &str, next_hop: Ipv4Addr) -> Vec<u8> {
    let update = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence([64512])),
            next_hop: Some(next_hop),
            ..PathAttributes::default()
        },
        nlri: vec![Nlri::new(prefix.parse::<Prefix>().expect("prefix"))],
        ..Update::default()
    };
    Message::Update(ParsedUpdate::from(update))
        .to_bytes(&Context::default())
        .expect("encode")
}

/// IPv4 unicast End-of-RIB.
pub fn end_of_rib() -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_end_of_rib(Family::IPV4_UNICAST, &mut bytes);
    bytes
}

/// Graceful restart as a peer offers it: forwarding kept for IPv4, a
/// 120 s restart time, and the R bit if it is `restarting`.
pub fn graceful_restart(restarting: bool) -> Vec<Capability> {
    vec![Capability::GracefulRestart(GracefulRestart {
        restarting,
        notification: false,
        reserved_flags: 0,
        restart_time: 120,
        families: vec![GracefulRestartFamily {
            family: Family::IPV4_UNICAST,
            forwarding_preserved: true,
            reserved_flags: 0,
        }],
    })]
}
