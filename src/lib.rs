//! chronik-tui: the views over Kafka exchanges (the terminal UI, the headless printers, `decode`,
//! the compatibility matrix) and the command line that wires a source to them. The layers below
//! are crates of their own, re-exported here under the names the views use:
//!
//! - [`protocol`] (`chronik-protocol`): the wire as data, no runtime and no I/O;
//! - [`capture`] (`chronik-capture`): exchanges, the store, pcap/pcapng and sniffing, with
//!   [`filter`] and [`diagnose`];
//! - [`broker`] (`chronik-broker`): the embedded broker, with [`settings`].
#![forbid(unsafe_code)]

pub use chronik_broker as broker;
pub use chronik_broker::settings;
pub use chronik_capture as capture;
pub use chronik_capture::{diagnose, filter};
pub use chronik_protocol as protocol;

pub mod addr;
pub mod cli;
pub mod control;
pub mod decode;
pub mod headless;
pub mod lint;
pub mod matrix;
pub mod replay;
pub mod scenario;
pub mod tui;
