//! `/metrics` as an HTTP server on a router must be: correct answers to
//! good requests, clear refusals of bad ones, no connection held by a
//! client that stalls, and no BGP session hurt by a burst of scrapes.
//! A real daemon with a real BIRD peer whose hold time is 3 s, so a daemon
//! that stalls for that long loses its session and the test sees it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::daemon::*;

const ME: [u8; 4] = [127, 0, 0, 150];
const BIRD: [u8; 4] = [127, 0, 0, 151];

/// One request on a fresh connection; the whole response as text.
fn exchange(at: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(at).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(request).expect("send");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or_default()
}

/// The established transitions counter of the one session.
fn established_transitions(metrics: &str) -> Option<u64> {
    metrics
        .lines()
        .find(|l| l.starts_with("starling_bgp_established_transitions_total{"))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

/// KEEPALIVEs the daemon has received on its one session.
fn keepalives_received(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("starling_bgp_messages_received_total{"))
        .filter(|l| l.contains("type=\"keepalive\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn metrics_over_http_refuse_bad_requests_cut_off_stalled_clients_and_spare_the_sessions() {
    let dir = Scratch::new("metrics-http");
    let starling_port = free_port(ME);
    let bird_port = free_port(BIRD);
    let socket = dir.0.join("admin.sock");
    let at = metrics_at(ME);
    let _bird = bird_with(
        &dir.0,
        (BIRD, bird_port),
        (ME, starling_port),
        "hold time 3;\n  keepalive time 1;",
    );
    let resources = resources("127.0.0.150", starling_port, "127.0.0.151", bird_port);
    starling_ok(&dir.0, &["apply", "-f", "-"], Some(&resources));
    let config = daemon_config(
        &dir.0,
        "127.0.0.150",
        None,
        &format!("[metrics]\nlisten = \"{at}\"\n"),
    );
    let _daemon = run_daemon(&dir.0, &config);
    wait_for("the session to BIRD", Duration::from_secs(30), || {
        session_state(&dir.0, &socket).as_deref() == Some("Established")
    });
    wait_for(
        "one established transition",
        Duration::from_secs(10),
        || established_transitions(&scrape(at)) == Some(1),
    );

    // Good requests: a scrape, HEAD, and two requests on one kept-alive
    // connection.
    let ok = exchange(
        at,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_line(&ok), "HTTP/1.1 200 OK", "{ok}");
    assert!(
        ok.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{ok}"
    );
    assert!(ok.contains("\nstarling_bgp_loc_rib_prefixes "), "{ok}");
    let head = exchange(
        at,
        b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_line(&head), "HTTP/1.1 200 OK", "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
    let twice = exchange(
        at,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(twice.matches("HTTP/1.1 200 OK").count(), 2);

    // Bad requests get a status that says why.
    for (request, want) in [
        (
            &b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
            "HTTP/1.1 404 Not Found",
        ),
        (
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed",
        ),
        (
            b"\x16\x03\x01\x02\x00 not http\r\n\r\n",
            "HTTP/1.1 400 Bad Request",
        ),
    ] {
        let response = exchange(at, request);
        assert_eq!(status_line(&response), want, "{request:?}: {response}");
    }
    let mut huge = b"GET /metrics HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..400 {
        huge.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "a".repeat(40)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    let response = exchange(at, &huge);
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 431 Request Header Fields Too Large",
        "{response}"
    );

    // A client that sends headers forever, a byte a second, is cut off
    // once its 10 s to finish them are up.
    let mut slow = TcpStream::connect(at).expect("connect");
    slow.set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let started = Instant::now();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n").expect("send");
    let cut_off = loop {
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "a client dribbling headers still holds its connection after 25 s"
        );
        std::thread::sleep(Duration::from_secs(1));
        if slow.write_all(b"X").is_err() {
            break started.elapsed();
        }
        // A closed connection may take one more write to show.
        let mut probe = [0u8; 1];
        slow.set_read_timeout(Some(Duration::from_millis(10)))
            .expect("timeout");
        if matches!(slow.read(&mut probe), Ok(0)) {
            break started.elapsed();
        }
    };
    assert!(
        cut_off >= Duration::from_secs(9),
        "cut off after {cut_off:?}"
    );

    // 1,000 scrapes at once: every one answered, and the session, whose
    // hold time is 3 s, never noticed.
    let burst = Instant::now();
    let scrapers: Vec<_> = (0..1000)
        .map(|_| {
            std::thread::spawn(move || {
                exchange(
                    at,
                    b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                )
            })
        })
        .collect();
    let answered = scrapers
        .into_iter()
        .map(|s| s.join().expect("scraper"))
        .filter(|r| status_line(r) == "HTTP/1.1 200 OK")
        .count();
    let took = burst.elapsed();
    assert_eq!(answered, 1000, "answered {answered} of 1,000 in {took:?}");
    eprintln!("1,000 concurrent scrapes answered in {took:?}");
    // Past the hold time: four more of BIRD's one-a-second keepalives
    // after the burst, on the same session.
    let after_burst = keepalives_received(&scrape(at));
    wait_for(
        "the session to live past its hold time",
        Duration::from_secs(15),
        || keepalives_received(&scrape(at)) >= after_burst + 4,
    );
    assert_eq!(
        session_state(&dir.0, &socket).as_deref(),
        Some("Established")
    );
    assert_eq!(established_transitions(&scrape(at)), Some(1));
}
