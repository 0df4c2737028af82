//! Live capture from a network interface with `pnet`'s datalink channel (an AF_PACKET socket on
//! Linux: needs root or CAP_NET_RAW). Frames go through the same packet parser, reassembly and
//! Kafka stream steps as a file.
//!
//! On `lo` the socket sees every frame twice, once leaving and once arriving; the second copy
//! carries the same sequence numbers and bytes, so reassembly delivers it once (a duplicate is
//! a retransmission to it). Each frame counts once in the exchanges; the packet counter counts
//! what the socket delivered.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pnet::datalink::{self, Channel, Config, NetworkInterface};

use super::kafka_stream::StreamOptions;
use super::source::{Pipeline, Progress};
use super::PacketRef;
use crate::{now_micros, Store};

/// Largest frame read (the loopback MTU is 65536).
const READ_BUFFER: usize = 256 * 1024;

/// A running live capture; dropping the handle does not stop it, [`Sniffer::stop`] does.
pub struct Sniffer {
    pub progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sniffer {
    /// Stops reading and flushes what is pending into the store.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The interfaces there are, by name.
pub fn interface_names() -> Vec<String> {
    datalink::interfaces().into_iter().map(|i| i.name).collect()
}

fn find(name: &str) -> io::Result<NetworkInterface> {
    datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no interface named {name:?} (there are: {})",
                    interface_names().join(", ")
                ),
            )
        })
}

/// Opens the interface and captures on a thread of its own until stopped. A missing permission
/// is an error that says what is needed.
pub fn start(name: &str, opts: StreamOptions, store: Arc<Store>) -> io::Result<Sniffer> {
    let iface = find(name)?;
    let config = Config {
        read_buffer_size: READ_BUFFER,
        read_timeout: Some(Duration::from_millis(100)),
        ..Config::default()
    };
    let mut rx = match datalink::channel(&iface, config) {
        Ok(Channel::Ethernet(_, rx)) => rx,
        Ok(_) => {
            return Err(io::Error::other(format!(
                "interface {name}: not an Ethernet-type channel"
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(1) => {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "cannot capture on {name}: {e}. Live capture needs root or the CAP_NET_RAW \
                     capability, e.g. `sudo setcap cap_net_raw+ep $(which chronik-tui)`"
                ),
            ))
        }
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot capture on {name}: {e}"),
            ))
        }
    };
    let progress = Progress::new_live(format!("sniff {name}"));
    let stop = Arc::new(AtomicBool::new(false));
    let (p, s) = (progress.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name(format!("sniff-{name}"))
        .spawn(move || {
            let mut pipeline = Pipeline::new(opts, store, p.clone());
            while !s.load(Ordering::Relaxed) {
                match rx.next() {
                    Ok(frame) => {
                        pipeline.packet(PacketRef {
                            ts_nanos: now_micros().saturating_mul(1000),
                            // Linux hands every interface's frames with an Ethernet header
                            // (loopback's is all zeros).
                            linktype: 1,
                            orig_len: frame.len() as u32,
                            data: frame,
                            interface: 0,
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                    Err(e) => {
                        p.error(format!("capture stopped: {e}"));
                        break;
                    }
                }
            }
            pipeline.finish();
        })?;
    Ok(Sniffer {
        progress,
        stop,
        thread: Some(thread),
    })
}
