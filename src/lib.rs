//! chronik-tui: an embedded Kafka-compatible broker whose every exchange is captured and
//! dissected, with views over them (headless printers now, a terminal UI later).
#![forbid(unsafe_code)]

pub mod addr;
pub mod broker;
pub mod capture;
pub mod cli;
pub mod control;
pub mod decode;
pub mod diagnose;
pub mod filter;
pub mod headless;
pub mod matrix;
pub mod protocol;
pub mod settings;
pub mod tui;
