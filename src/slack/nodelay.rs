//! Nagle's algorithm off on the process's TCP connections, for slack-morphism's Socket Mode sockets.
//!
//! slack-morphism opens each Socket Mode WebSocket with tokio-tungstenite's `connect_async`, which
//! leaves Nagle's algorithm on and offers no hook to change that. With Nagle on, the small frame that
//! acknowledges an event waits until the peer has ACKed the previous one (up to its delayed-ACK
//! timer, 40 ms on Linux) whenever acks follow each other closely; measured against the emulator,
//! that is most of the acknowledgement's p99 (BENCHMARKS.md). So after each `hello` the bot turns
//! `TCP_NODELAY` on for every connected TCP socket it has: the new WebSocket, and the Web API's
//! pooled connections, which are request/response traffic that Nagle only delays too.
//!
//! The sockets are found in `/proc/self/fd` (Linux only; elsewhere this does nothing).

/// Set `TCP_NODELAY` on every connected TCP socket of this process that does not have it; returns how
/// many were changed.
#[cfg(target_os = "linux")]
pub(crate) fn disable_nagle() -> usize {
    use std::os::fd::BorrowedFd;
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut changed = 0;
    for entry in dir.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: `fd` named an open socket of this process a moment ago and the borrow lasts for
        // three socket-option calls. Should another thread close it and the number be reused in
        // between, the calls reach whatever it names then: a non-TCP descriptor refuses them
        // (ENOTSOCK, ENOPROTOOPT), and on another TCP socket of ours the option is equally wanted.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&fd);
        let tcp_connected = socket.peer_addr().is_ok_and(|a| a.is_ipv4() || a.is_ipv6());
        if tcp_connected && socket.tcp_nodelay().is_ok_and(|on| !on) && socket.set_tcp_nodelay(true).is_ok() {
            changed += 1;
        }
    }
    changed
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn disable_nagle() -> usize {
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn connected_tcp_sockets_get_nodelay_and_listeners_are_left_alone() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert!(!client.nodelay().unwrap() && !server.nodelay().unwrap());
        assert!(super::disable_nagle() >= 2);
        assert!(client.nodelay().unwrap() && server.nodelay().unwrap());
    }
}
