//! The integration tests, in one test binary (one link instead of one per file): the real
//! binary, real clients over real sockets, real captures, tshark, tmux. Each module is one
//! subject; `tests/it/common/` holds what they share. Run one module with
//! `cargo nextest run --test it clients::` (or `cargo test --test it clients::`).

mod common;

mod admin;
mod bad_input;
mod broker_socket;
mod cli;
mod clients;
mod conn_events;
mod consumer_protocol;
mod dissector_limits;
mod export_pcapng;
mod faults;
mod lint;
mod matrix;
mod mutations;
mod parquet;
mod pcap_decode;
mod placement;
mod proxy;
mod readme;
mod records;
mod replay;
mod scenarios;
mod schema_oracle;
mod stall;
mod third_party_captures;
mod transactions;
mod tshark_live;
mod tui_render;
mod tui_tmux;
