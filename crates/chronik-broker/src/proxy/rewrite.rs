//! Pointing the broker addresses of upstream responses at the proxy's listeners, so clients
//! keep talking through it: each broker of a Metadata or DescribeCluster response and each
//! coordinator of a FindCoordinator response gets the host and port of the listener that
//! forwards to it (bound as the address first appears). Every other byte stays as upstream
//! sent it; each rewrite is noted on the exchange.

use std::net::IpAddr;
use std::sync::Arc;

use super::listeners::Upstream;
use super::Proxy;
use chronik_protocol::dissect::{dissect_response_with, Limits};
use chronik_protocol::mutate::{set_at, FieldEdit, SetValue};
use chronik_protocol::{api_key, Field, Value};

/// One broker address in a response: the struct holding it and its fields.
struct Address<'a> {
    /// The struct (a Metadata broker, a coordinator, the FindCoordinator body).
    owner: &'a Field,
    node: Option<i64>,
    host: &'a Field,
    port: &'a Field,
}

/// The broker addresses of a dissected response: every struct with a `host` and a `port`
/// field (registry names ending so), skipping the empty ones of an error answer.
fn addresses(root: &Field) -> Vec<Address<'_>> {
    let mut out = Vec::new();
    root.walk(0, &mut |f, _| {
        let child = |suffix: &str| f.children.iter().find(|c| c.name().ends_with(suffix));
        let (Some(host), Some(port)) = (child(".host"), child(".port")) else {
            return;
        };
        let node = child(".node_id")
            .or_else(|| child(".broker_id"))
            .and_then(Field::as_int);
        let usable = matches!(&host.value, Value::Str(h) if !h.is_empty())
            && port
                .as_int()
                .is_some_and(|p| (1..=u16::MAX as i64).contains(&p));
        if usable {
            out.push(Address {
                owner: f,
                node,
                host,
                port,
            });
        }
    });
    out
}

/// The response with its broker addresses pointed at the proxy's listeners, and a note per
/// address (or why it was left as it was). `None` when the API names no brokers or nothing
/// changed. `local_ip`: the IP the client reached the proxy on, written when the listeners
/// are bound to an unspecified address (0.0.0.0).
pub(super) fn rewrite(
    proxy: &Arc<Proxy>,
    frame: &[u8],
    api: i16,
    version: i16,
    local_ip: IpAddr,
) -> (Option<Vec<u8>>, Vec<String>) {
    if ![
        api_key::METADATA,
        api_key::FIND_COORDINATOR,
        api_key::DESCRIBE_CLUSTER,
    ]
    .contains(&api)
    {
        return (None, Vec::new());
    }
    let limits = Limits {
        records: false,
        ..Limits::default()
    };
    let d = dissect_response_with(frame, api, version, limits);
    if let Some(e) = d.error {
        return (
            None,
            vec![format!(
                "proxy: broker addresses not rewritten: the response does not decode ({e})"
            )],
        );
    }
    let mut edits = Vec::new();
    let mut notes = Vec::new();
    for a in addresses(&d.root) {
        let Value::Str(host) = &a.host.value else {
            continue;
        };
        let upstream = Upstream {
            host: host.clone(),
            port: a.port.as_int().unwrap_or_default() as u16,
        };
        let node = a.node.map(|n| format!(" node {n}")).unwrap_or_default();
        let local = match proxy.listener_for(&upstream) {
            Ok(local) => local,
            Err(why) => {
                notes.push(format!(
                    "proxy: {}{node} left as {upstream}: {why}",
                    a.owner.name()
                ));
                continue;
            }
        };
        let ip = if local.ip().is_unspecified() {
            local_ip
        } else {
            local.ip()
        };
        let to = Upstream {
            host: ip.to_string(),
            port: local.port(),
        };
        if to == upstream {
            continue;
        }
        notes.push(format!(
            "proxy rewrote {}{node}: {upstream} -> {to}",
            a.owner.name()
        ));
        edits.push(FieldEdit {
            field: a.host.id,
            offset: a.host.offset as usize,
            value: SetValue::Str(to.host),
        });
        edits.push(FieldEdit {
            field: a.port.id,
            offset: a.port.offset as usize,
            value: SetValue::Int {
                value: to.port as i64,
                name: None,
            },
        });
    }
    if edits.is_empty() {
        return (None, notes);
    }
    match set_at(frame, api, version, &edits) {
        Ok(out) => (Some(out), notes),
        Err(e) => {
            tracing::error!(error = %e, "rewriting broker addresses");
            (
                None,
                vec![format!("proxy: broker addresses not rewritten: {e}")],
            )
        }
    }
}
