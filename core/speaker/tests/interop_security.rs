//! TCP-MD5 (RFC 2385) and GTSM (RFC 5082) against a real BIRD 2 on
//! loopback: the right key establishes, a wrong key never does, and GTSM
//! on both sides establishes.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Bird;
use starling_speaker::PeerConfig;
use starling_speaker::config::Secret;
use starling_speaker::driver::{PeerEvent, PeerRegistry, accept_loop};
use starling_speaker::session::State;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;

fn bird_conf(local: u8, starling: u8, port: u16, extra: &str) -> String {
    format!(
        r#"
router id 192.0.2.{local};
protocol device {{}}
protocol bgp starling {{
    local 127.0.0.{local} as 64512;
    neighbor 127.0.0.{starling} port {port} as 64513;
    multihop;
    strict bind;
    connect retry time 1;
    {extra}
    ipv4 {{ import all; export none; }};
}}
"#
    )
}

/// Start a Starling peer for BIRD at 127.0.0.`bird` on a listener at
/// 127.0.0.`me`; returns the event stream.
async fn starling(
    me: u8,
    bird: u8,
    password: Option<&str>,
    ttl_security: Option<u8>,
) -> (
    u16,
    mpsc::UnboundedReceiver<(IpAddr, PeerEvent)>,
    Arc<Mutex<PeerRegistry>>,
) {
    let listen = SocketAddr::from(([127, 0, 0, me], 0));
    starling_on(listen, me, bird, password, ttl_security).await
}

/// As `starling`, listening on `listen`: on `[::]`, the appliance's
/// default, BIRD's IPv4 connection arrives IPv4-mapped.
async fn starling_on(
    listen: SocketAddr,
    me: u8,
    bird: u8,
    password: Option<&str>,
    ttl_security: Option<u8>,
) -> (
    u16,
    mpsc::UnboundedReceiver<(IpAddr, PeerEvent)>,
    Arc<Mutex<PeerRegistry>>,
) {
    let listener = TcpListener::bind(listen).await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let speaker = Arc::new(Mutex::new(PeerRegistry::default()));
    let (tx, rx) = mpsc::unbounded_channel();
    let mut cfg = PeerConfig::new(
        SocketAddr::from(([127, 0, 0, bird], 179)),
        64513,
        64512,
        Ipv4Addr::new(192, 0, 2, me),
    );
    cfg.passive = true;
    cfg.local_address = Some(IpAddr::from([127, 0, 0, me]));
    cfg.password = password.map(Secret::new);
    cfg.ttl_security = ttl_security;
    // The key must be on the listener before BIRD's SYN: add the peer
    // first, then start accepting.
    speaker.lock().expect("speaker").add_peer(cfg, tx);
    tokio::spawn(accept_loop(std::sync::Arc::new(listener), speaker.clone()));
    (port, rx, speaker)
}

async fn established(
    events: &mut mpsc::UnboundedReceiver<(IpAddr, PeerEvent)>,
    within: Duration,
) -> bool {
    timeout(within, async {
        loop {
            if let Some((_, PeerEvent::StateChanged(State::Established))) = events.recv().await {
                return;
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_with_the_right_key_establishes() {
    let (port, mut events, _s) = starling(50, 51, Some("s3cret-key"), None).await;
    let bird = Bird::start(&bird_conf(51, 50, port, r#"password "s3cret-key";"#));
    assert!(
        established(&mut events, Duration::from_secs(30)).await,
        "{}",
        bird.cli("show protocols all starling")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_with_a_wrong_key_never_establishes() {
    let (port, mut events, _s) = starling(52, 53, Some("right-key"), None).await;
    let bird = Bird::start(&bird_conf(53, 52, port, r#"password "wrong-key";"#));
    // BIRD retries every second; give it several attempts. The kernel drops
    // the unsigned-by-our-key SYNs, so nothing may get through.
    assert!(
        !established(&mut events, Duration::from_secs(6)).await,
        "established with a wrong key"
    );
    assert!(!bird.cli("show protocols starling").contains("Established"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtsm_on_both_sides_establishes() {
    let (port, mut events, _s) = starling(54, 55, None, Some(1)).await;
    // On loopback BIRD wants `multihop`; with GTSM it then sends TTL 255.
    let bird = Bird::start(&bird_conf(55, 54, port, "ttl security on;"));
    assert!(
        established(&mut events, Duration::from_secs(30)).await,
        "{}",
        bird.cli("show protocols all starling")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtsm_drops_a_peer_that_does_not_send_ttl_255() {
    // BIRD multihop without GTSM sends with TTL 64; we accept only 255.
    let (port, mut events, _s) = starling(56, 57, None, Some(1)).await;
    let bird = Bird::start(&bird_conf(57, 56, port, "").replace("multihop;", "multihop 64;"));
    assert!(
        !established(&mut events, Duration::from_secs(6)).await,
        "established despite TTL 64"
    );
    assert!(!bird.cli("show protocols starling").contains("Established"));
}

/// TCP-MD5 and GTSM hold on the appliance's default listener too: one
/// dual-stack socket on `[::]`, where an IPv4 peer's key is installed for
/// its IPv4-mapped address and its TTL checked on the IPv4 header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_and_gtsm_hold_on_a_dual_stack_listener() {
    let any = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0));
    let (port, mut events, _s) = starling_on(any, 58, 59, Some("s3cret-key"), Some(1)).await;
    let bird = Bird::start(&bird_conf(
        59,
        58,
        port,
        r#"password "s3cret-key"; ttl security on;"#,
    ));
    assert!(
        established(&mut events, Duration::from_secs(30)).await,
        "{}",
        bird.cli("show protocols all starling")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtsm_drops_ttl_64_on_a_dual_stack_listener() {
    let any = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0));
    let (port, mut events, _s) = starling_on(any, 60, 61, None, Some(1)).await;
    let bird = Bird::start(&bird_conf(61, 60, port, "").replace("multihop;", "multihop 64;"));
    assert!(
        !established(&mut events, Duration::from_secs(6)).await,
        "established despite TTL 64"
    );
    assert!(!bird.cli("show protocols starling").contains("Established"));
}
