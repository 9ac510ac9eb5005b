//! Socket options the standard library does not offer: TCP-MD5 signatures
//! (RFC 2385) and GTSM's minimum TTL (RFC 5082). Linux only.
//!
//! This is the one module with `unsafe`: each block is a single
//! `setsockopt` call on a descriptor we own, with a value whose layout
//! matches the kernel's.

#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

/// Longest TCP-MD5 key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_MD5_KEY: usize = 80;

/// `struct tcp_md5sig` from <linux/tcp.h>.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: libc::c_int,
    key: [u8; MAX_MD5_KEY],
}

fn set<T>(fd: &impl AsRawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live, initialised `T` for the duration of
    // the call, and we pass its exact size; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Install (or, with `None`, remove) the TCP-MD5 key for connections with
/// `peer` on `socket`. Must be set on a listening socket before the peer's
/// SYN arrives, and on an active socket before `connect`.
pub fn set_md5_key(
    socket: &impl AsRawFd,
    peer: IpAddr,
    key: Option<&[u8]>,
    v6_socket: bool,
) -> io::Result<()> {
    let key = key.unwrap_or_default();
    if key.len() > MAX_MD5_KEY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TCP-MD5 key longer than 80 octets",
        ));
    }
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    // An IPv4 peer on an IPv6 socket is seen as IPv4-mapped.
    let peer = match (peer, v6_socket) {
        (IpAddr::V4(v4), true) => IpAddr::V6(v4.to_ipv6_mapped()),
        (other, _) => other,
    };
    match peer {
        IpAddr::V4(v4) => {
            // SAFETY: as above.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from(v4).to_be();
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in; we write exactly one sockaddr_in at its start.
            unsafe { std::ptr::write((&raw mut sig.addr).cast::<libc::sockaddr_in>(), sin) };
        }
        IpAddr::V6(v6) => {
            // SAFETY: as above.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = v6.octets();
            // SAFETY: as for sockaddr_in.
            unsafe { std::ptr::write((&raw mut sig.addr).cast::<libc::sockaddr_in6>(), sin6) };
        }
    }
    sig.key_len = key.len() as u16;
    sig.key
        .get_mut(..key.len())
        .unwrap_or_default()
        .copy_from_slice(key);
    set(socket, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig)
}

/// Outgoing TTL (IPv4) or hop limit (IPv6).
pub fn set_ttl(socket: &impl AsRawFd, ttl: u8, v6: bool) -> io::Result<()> {
    let value = libc::c_int::from(ttl);
    if v6 {
        set(socket, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &value)
    } else {
        set(socket, libc::IPPROTO_IP, libc::IP_TTL, &value)
    }
}

/// GTSM: drop packets that arrive with a TTL below `min` (RFC 5082).
pub fn set_min_ttl(socket: &impl AsRawFd, min: u8, v6: bool) -> io::Result<()> {
    let value = libc::c_int::from(min);
    if v6 {
        set(socket, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &value)
    } else {
        set(socket, libc::IPPROTO_IP, libc::IP_MINTTL, &value)
    }
}

/// Keep the SYN of each connection accepted on this listener, so its TTL
/// can be checked afterwards (`saved_syn_ttl`).
pub fn save_syn(listener: &impl AsRawFd) -> io::Result<()> {
    set(
        listener,
        libc::IPPROTO_TCP,
        libc::TCP_SAVE_SYN,
        &(1 as libc::c_int),
    )
}

/// The TTL (IPv4) or hop limit (IPv6) the peer's SYN arrived with, if the
/// listener kept it. GTSM uses it: `IP_MINTTL` can only be set on an
/// accepted socket after the handshake, so the SYN is checked here.
pub fn saved_syn_ttl(stream: &impl AsRawFd) -> io::Result<Option<u8>> {
    let mut buf = [0u8; 512];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` is writable for `len` bytes and `len` is a valid
    // in/out length; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_SAVED_SYN,
            buf.as_mut_ptr().cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let header = buf.get(..len as usize).unwrap_or_default();
    Ok(match header.first().map(|b| b >> 4) {
        Some(4) => header.get(8).copied(),
        Some(6) => header.get(7).copied(),
        _ => None,
    })
}
