//! The sandbox against real misbehaving plugins: each failure is bounded in
//! time and memory, typed, counted, and leaves the host able to serve.

use std::time::{Duration, Instant};

use starling_plugin_host::contract::{Family, Object, Role};
use starling_plugin_host::{ErrorKind, Host, Limits, PluginError};

fn object(kind: &str, name: &str, spec: &str) -> Object {
    Object::new(kind, name, spec)
}

fn host() -> Host {
    Host::new(Limits {
        call_deadline: Duration::from_millis(200),
        memory: 32 << 20,
        ..Limits::default()
    })
    .expect("host")
}

fn hostile(mode: &str, when: &str) -> Vec<Object> {
    vec![
        object("Node", "a", "{}"),
        object(
            "Hostile",
            "h",
            &format!(r#"{{"mode": "{mode}", "when": "{when}"}}"#),
        ),
    ]
}

/// Evaluate in `mode`, expecting the failure `want`, within `bound`; then
/// check the same plugin still answers a well-behaved snapshot.
fn bounded(mode: &str, when: &str, want: ErrorKind, bound: Duration) -> PluginError {
    let host = host();
    let plugin = host
        .load("hostile", starling_plugins::TEST_HOSTILE)
        .expect("load");
    let started = Instant::now();
    let result = plugin
        .evaluate(&hostile(mode, when))
        .and_then(|mut e| e.assign());
    let took = started.elapsed();
    let err = result.expect_err(mode);
    assert_eq!(err.kind(), want, "{mode}: {err}");
    assert!(took < bound, "{mode}: took {took:?}");
    assert_eq!(plugin.metrics().snapshot().errors(want), 1, "{mode}");
    // A fresh evaluation of the same plugin works.
    let fine = plugin
        .evaluate(&[object("Node", "a", "{}")])
        .and_then(|mut e| e.assign())
        .expect("the plugin serves again");
    assert_eq!(fine, vec![("a".to_owned(), 65000)]);
    err
}

#[test]
fn an_infinite_loop_hits_the_deadline() {
    for when in ["load", "call"] {
        let err = bounded("loop", when, ErrorKind::Timeout, Duration::from_secs(2));
        assert!(err.to_string().contains("deadline"), "{err}");
    }
}

#[test]
fn a_memory_bomb_hits_the_cap() {
    let err = bounded(
        "memory",
        "call",
        ErrorKind::OutOfMemory,
        Duration::from_secs(5),
    );
    assert!(err.to_string().contains("ran out of memory"), "{err}");
}

#[test]
fn a_panic_is_a_trap() {
    bounded("trap", "call", ErrorKind::Trap, Duration::from_secs(2));
}

#[test]
fn runaway_recursion_is_a_trap() {
    // Rust guests keep big frames on a shadow stack in linear memory, which
    // overflows first (an out-of-bounds trap); small frames exhaust the
    // wasm stack cap (a stack trap). Either way: a trap, host intact.
    let err = bounded("stack", "call", ErrorKind::Trap, Duration::from_secs(2));
    let message = err.to_string();
    assert!(
        message.contains("stack") || message.contains("out of bounds"),
        "{message}"
    );
}

#[test]
fn a_huge_answer_is_bounded_by_the_memory_cap() {
    bounded(
        "huge",
        "call",
        ErrorKind::OutOfMemory,
        Duration::from_secs(5),
    );
}

#[test]
fn a_log_flood_is_cut_off() {
    let host = Host::new(Limits::default()).expect("host");
    let plugin = host
        .load("hostile", starling_plugins::TEST_HOSTILE)
        .expect("load");
    let mut e = plugin
        .evaluate(&hostile("log-flood", "call"))
        .expect("load");
    e.assign().expect("a flood is not an error");
    let dropped = plugin.metrics().snapshot().dropped_log_lines;
    assert_eq!(dropped, 20_000 - u64::from(host.limits().log_lines));
}

#[test]
fn a_poisoned_evaluation_is_never_entered_again() {
    let host = host();
    let plugin = host
        .load("hostile", starling_plugins::TEST_HOSTILE)
        .expect("load");
    let mut e = plugin.evaluate(&hostile("trap", "call")).expect("load");
    assert_eq!(e.assign().expect_err("trap").kind(), ErrorKind::Trap);
    let again = e.nodes().expect_err("poisoned");
    assert!(again.to_string().contains("earlier call"), "{again}");
}

#[test]
fn roles_a_plugin_does_not_fill_are_refused_by_the_host() {
    let host = host();
    let plugin = host
        .load("prefix-guard", starling_plugins::EXAMPLE_PREFIX_GUARD)
        .expect("load");
    assert_eq!(plugin.roles(), &[Role::RoutePolicy]);
    let mut e = plugin.evaluate(&[]).expect("load");
    let err = e
        .plan(&[], &["a".to_owned()])
        .expect_err("no peer selection");
    assert!(
        matches!(
            err,
            PluginError::MissingRole {
                role: Role::PeerSelection,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn components_that_are_not_starling_plugins_are_refused() {
    let host = host();
    // Not wasm at all.
    let err = host.load("junk", b"not wasm").expect_err("junk");
    assert_eq!(err.kind(), ErrorKind::Load, "{err}");
    // A core module, not a component.
    let err = host
        .load("core", b"\0asm\x01\0\0\0")
        .expect_err("core module");
    assert_eq!(err.kind(), ErrorKind::Load, "{err}");
    // An empty component: every export is missing.
    let err = host
        .load("empty", b"\0asm\x0d\0\x01\0")
        .expect_err("empty component");
    assert_eq!(err.kind(), ErrorKind::Incompatible, "{err}");
    assert!(err.to_string().contains("starling:policy"), "{err}");
}

#[test]
fn a_plugin_built_for_another_wit_version_is_refused() {
    let err = host()
        .load("future", starling_plugins::TEST_FUTURE)
        .expect_err("0.3.0 is not supported");
    assert_eq!(err.kind(), ErrorKind::Incompatible, "{err}");
    assert!(
        err.to_string()
            .contains("wrong WIT version or missing export"),
        "{err}"
    );
}

#[test]
fn the_prefix_guard_example_refuses_too_specific_exports() {
    use starling_plugin_host::contract::{
        Attributes, Direction, Prefix, Route, RouteContext, Verdicts,
    };
    let plugin = host()
        .load("prefix-guard", starling_plugins::EXAMPLE_PREFIX_GUARD)
        .expect("load");
    let mut e = plugin
        .evaluate(&[object("PrefixGuard", "edge", r#"{"maxLengthV4": 22}"#)])
        .expect("load");
    let route = |p: &str, len: u8| Route {
        prefix: Prefix::new(p.parse().expect("ip"), len),
        attributes: 0,
    };
    let mut context = RouteContext {
        node: "a".to_owned(),
        session: "Global_198_51_100_1".to_owned(),
        family: Family::Ipv4,
        direction: Direction::Export,
        peer_as: 65000,
        local_as: 64512,
        filters: Vec::new(),
    };
    let routes = [
        route("10.0.0.0", 22),
        route("10.0.0.0", 23),
        route("2001:db8::", 48),
        route("2001:db8::", 49),
    ];
    let v = e
        .route_policy(&context, &[Attributes::default()], &routes)
        .expect("policy");
    let (r, a) = (Verdicts::REJECT, Verdicts::ACCEPT);
    assert_eq!(v.outcome, [a, r, a, r]);
    context.direction = Direction::Import;
    let v = e
        .route_policy(&context, &[Attributes::default()], &routes)
        .expect("policy");
    assert_eq!(v.outcome, [a, a, a, a]);
    // Invalid configuration is refused with the field named.
    let err = plugin
        .evaluate(&[object("PrefixGuard", "edge", r#"{"maxLengthV6": 129}"#)])
        .expect_err("invalid");
    assert!(
        err.to_string()
            .contains("PrefixGuard 'edge', field spec.maxLengthV6"),
        "{err}"
    );
}

#[test]
fn no_ambient_capabilities() {
    // Environment, files, sockets: the guest's standard library asks, and
    // gets nothing.
    let host = host();
    let plugin = host
        .load("hostile", starling_plugins::TEST_HOSTILE)
        .expect("load");
    let answer = |mode: &str| {
        plugin
            .evaluate(&hostile(mode, "call"))
            .and_then(|mut e| e.assign())
            .unwrap_or_else(|e| panic!("{mode}: {e}"))
    };
    for mode in ["env", "file", "net"] {
        assert_eq!(
            answer(mode),
            [(String::new(), u32::from(mode != "net"))],
            "{mode}"
        );
    }
    // The clocks are virtual: the Unix epoch, a microsecond per reading,
    // the same in every evaluation.
    let clock = answer("clock");
    let nanos: u64 = clock[0].0.parse().expect("nanoseconds");
    assert!(nanos < 1_000_000, "the wall clock read {nanos} ns");
    assert_eq!(answer("clock"), clock);
    // An hour's sleep ends at once, and the plugin saw the hour pass.
    let started = Instant::now();
    assert_eq!(answer("sleep"), [("3600".to_owned(), 1)]);
    assert!(started.elapsed() < Duration::from_secs(1));
    // stdout and stderr go to the log, within its line budget.
    answer("stdout");
    let dropped = plugin.metrics().snapshot().dropped_log_lines;
    assert_eq!(dropped, 4_000 - u64::from(host.limits().log_lines));
}

#[test]
fn a_forbidden_import_is_refused_at_load_with_its_name() {
    // The smallest component that imports `wasi:http/outgoing-handler`:
    // an empty instance type, imported under that name.
    let name = b"wasi:http/outgoing-handler@0.2.0";
    let mut import = vec![0x01, 0x00, name.len() as u8];
    import.extend_from_slice(name);
    import.extend_from_slice(&[0x05, 0x00]);
    let mut component = b"\0asm\x0d\x00\x01\x00".to_vec();
    component.extend_from_slice(&[0x07, 0x03, 0x01, 0x42, 0x00]);
    component.push(0x0a);
    component.push(import.len() as u8);
    component.extend_from_slice(&import);
    let err = host()
        .load("forbidden", &component)
        .expect_err("a forbidden import");
    let message = err.to_string();
    assert!(
        message.contains("imports `wasi:http/outgoing-handler@0.2.0`, which no plugin is given"),
        "{message}"
    );
}
