//! Addresses as people type them on a command line: `9092`, `:9092`, `localhost:9092`,
//! `broker-1:9092`, `[::1]:9092`, `0.0.0.0:9092`. A bare port (or `:PORT`) means
//! `127.0.0.1:PORT`, so nothing listens beyond this machine unless asked.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// Why an address was refused; shown after the flag and the text, e.g.
/// `--listen 99999: port out of range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrError {
    /// The port is a number above 65535.
    PortOutOfRange,
    /// The port part is empty or not a number.
    BadPort(String),
    /// `[` without its `]`, or an IPv6 address without brackets.
    BadBrackets,
    /// A host name that does not resolve.
    Unresolved(String),
    /// Nothing was given.
    Empty,
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrError::PortOutOfRange => f.write_str("port out of range"),
            AddrError::BadPort(p) if p.is_empty() => {
                f.write_str("no port (expected PORT or HOST:PORT)")
            }
            AddrError::BadPort(p) => write!(f, "{p:?} is not a port (expected PORT or HOST:PORT)"),
            AddrError::BadBrackets => {
                f.write_str("write an IPv6 address in brackets, e.g. [::1]:9092")
            }
            AddrError::Unresolved(host) => write!(f, "cannot resolve host {host:?}"),
            AddrError::Empty => f.write_str("empty address (expected PORT or HOST:PORT)"),
        }
    }
}

impl std::error::Error for AddrError {}

/// A host and a port; [`parse_host_port`] makes the host `127.0.0.1` for a bare port.
pub use crate::broker::HostPort;

fn port(text: &str) -> Result<u16, AddrError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddrError::BadPort(text.to_string()));
    }
    text.parse::<u16>().map_err(|_| AddrError::PortOutOfRange)
}

/// Splits `PORT`, `:PORT`, `HOST:PORT` or `[V6]:PORT` without resolving anything.
pub fn parse_host_port(text: &str) -> Result<HostPort, AddrError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AddrError::Empty);
    }
    let loopback = || Ipv4Addr::LOCALHOST.to_string();
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(AddrError::BadBrackets)?;
        let p = after
            .strip_prefix(':')
            .ok_or_else(|| AddrError::BadPort(String::new()))?;
        return Ok(HostPort {
            host: host.to_string(),
            port: port(p)?,
        });
    }
    match text.rsplit_once(':') {
        None => Ok(HostPort {
            host: loopback(),
            port: port(text)?,
        }),
        Some((host, _)) if host.contains(':') => Err(AddrError::BadBrackets),
        Some(("", p)) => Ok(HostPort {
            host: loopback(),
            port: port(p)?,
        }),
        Some((host, p)) => Ok(HostPort {
            host: host.to_string(),
            port: port(p)?,
        }),
    }
}

/// An address to listen on: [`parse_host_port`], then the host resolved (a name resolves to
/// its first IPv4 address when it has one, so `localhost` is 127.0.0.1).
pub fn parse_listen(text: &str) -> Result<SocketAddr, AddrError> {
    let hp = parse_host_port(text)?;
    if let Ok(ip) = hp.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, hp.port));
    }
    let found: Vec<SocketAddr> = (hp.host.as_str(), hp.port)
        .to_socket_addrs()
        .map_err(|_| AddrError::Unresolved(hp.host.clone()))?
        .collect();
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or(found.first())
        .copied()
        .ok_or(AddrError::Unresolved(hp.host))
}

/// What a listen address reaches: `None` for loopback, else a note for the status bar.
pub fn beyond_loopback(addr: &SocketAddr) -> Option<&'static str> {
    if addr.ip().is_loopback() {
        None
    } else if addr.ip().is_unspecified() {
        Some("all interfaces: reachable beyond this machine")
    } else {
        Some("reachable beyond this machine")
    }
}

/// A flag's value refused: `--listen 99999: port out of range`.
pub fn flag_error(flag: &str, text: &str, e: &AddrError) -> String {
    format!("{flag} {text}: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(s: &str) -> String {
        parse_listen(s).map_or_else(|e| format!("error: {e}"), |a| a.to_string())
    }

    #[test]
    fn the_forms_people_type() {
        assert_eq!(listen("9092"), "127.0.0.1:9092");
        assert_eq!(listen(":9092"), "127.0.0.1:9092");
        assert_eq!(listen("localhost:9092"), "127.0.0.1:9092");
        assert_eq!(listen("127.0.0.1:0"), "127.0.0.1:0");
        assert_eq!(listen("[::1]:9092"), "[::1]:9092");
        assert_eq!(listen("0.0.0.0:9092"), "0.0.0.0:9092");
        assert_eq!(listen(" 9092 "), "127.0.0.1:9092");
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        assert_eq!(listen("99999"), "error: port out of range");
        assert_eq!(listen("127.0.0.1:99999"), "error: port out of range");
        assert_eq!(
            listen("127.0.0.1:"),
            "error: no port (expected PORT or HOST:PORT)"
        );
        assert_eq!(
            listen("localhost"),
            "error: \"localhost\" is not a port (expected PORT or HOST:PORT)"
        );
        assert_eq!(
            listen("::1:9092"),
            "error: write an IPv6 address in brackets, e.g. [::1]:9092"
        );
        assert_eq!(
            listen("[::1:9092"),
            "error: write an IPv6 address in brackets, e.g. [::1]:9092"
        );
        assert_eq!(
            listen("-1"),
            "error: \"-1\" is not a port (expected PORT or HOST:PORT)"
        );
        assert_eq!(
            listen(""),
            "error: empty address (expected PORT or HOST:PORT)"
        );
        assert_eq!(
            listen("no-such-host.invalid:9092"),
            "error: cannot resolve host \"no-such-host.invalid\""
        );
        assert_eq!(
            flag_error("--listen", "99999", &AddrError::PortOutOfRange),
            "--listen 99999: port out of range"
        );
    }

    #[test]
    fn host_port_keeps_the_name_and_brackets_v6() {
        let hp = parse_host_port("broker-1.example:29092").unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("broker-1.example", 29092));
        assert_eq!(
            parse_host_port("9092").unwrap().to_string(),
            "127.0.0.1:9092"
        );
        assert_eq!(parse_host_port("[::1]:9").unwrap().to_string(), "[::1]:9");
    }

    #[test]
    fn loopback_or_not() {
        let a = |s: &str| beyond_loopback(&parse_listen(s).unwrap());
        assert_eq!(a("9092"), None);
        assert_eq!(a("[::1]:9092"), None);
        assert_eq!(
            a("0.0.0.0:9092"),
            Some("all interfaces: reachable beyond this machine")
        );
        assert_eq!(a("10.1.2.3:9092"), Some("reachable beyond this machine"));
    }
}
