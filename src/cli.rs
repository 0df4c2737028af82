//! The command line: every flag and subcommand, grouped as `--help` shows them, and the checks
//! that turn what was typed into addresses and paths (a usage error names the flag and says
//! what is wrong in one line). `main` parses with this and wires what it describes; the shell
//! completions and the man page come from the same definitions.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand};

use crate::addr::{self, HostPort};
use crate::capture::render::TimeFormat;
use crate::capture::StoreLimits;
use crate::protocol::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::protocol::lint::Level;
use crate::settings::{FaultRule, MutationRule, ThrottlePlacement, ThrottleRule, VersionCap};

/// A Kafka wire-protocol workbench: an embedded broker that real clients use, with every request
/// and response captured and decoded down to the byte.
#[derive(Debug, Parser)]
#[command(
    name = "chronik-tui",
    version,
    after_help = "Examples:\n  chronik-tui --listen 9092                 the broker and the terminal UI\n  \
                  chronik-tui --headless --listen 9092      one line per exchange instead\n  \
                  chronik-tui --proxy broker.example:9092   the UI in front of a broker\n  \
                  chronik-tui --pcap capture.pcapng         a capture in the terminal UI\n  \
                  chronik-tui decode -Y 'api == Produce' capture.pcapng\n\n\
                  Logs go to $XDG_STATE_HOME/chronik-tui/chronik-tui.log (RUST_LOG sets the level)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    #[command(flatten)]
    pub capture: CaptureArgs,
    #[command(flatten)]
    pub placement: PlacementArgs,
    #[command(flatten)]
    pub stall: StallArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub display: DisplayArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// The embedded broker.
#[derive(Debug, Args)]
#[command(next_help_heading = "Broker")]
pub struct BrokerArgs {
    /// Where the embedded broker (or the proxy's bootstrap listener) listens: PORT (on
    /// 127.0.0.1), :PORT, HOST:PORT, [::1]:PORT or 0.0.0.0:PORT (every interface).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")]
    pub listen: String,
    /// What Metadata tells clients to connect to (default: the address listened on).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// Keep partition logs in segment files under DIR, recovered on restart (default: memory).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Require SASL/PLAIN with these credentials.
    #[arg(long, value_name = "USER:PASS")]
    pub sasl_plain: Option<String>,
    /// Do not create unknown topics on Metadata or Produce.
    #[arg(long)]
    pub no_auto_create_topics: bool,
    /// Partitions of an auto-created topic.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    pub default_partitions: i32,
    /// Largest request frame accepted, checked before allocating.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,
    /// With --data-dir: when segment files are flushed to disk. never: left to the OS (a
    /// produce survives kill -9 once acknowledged, not a power loss); interval: every
    /// --fsync-interval-ms and when a segment is rolled; always: before each produce is
    /// acknowledged.
    #[arg(long, value_name = "WHEN", default_value = "never", value_parser = ["never", "interval", "always"])]
    pub fsync: String,
    /// With --fsync interval: how often logs with unflushed writes are flushed.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub fsync_interval_ms: u64,
    /// How often retention (retention.ms, retention.bytes) removes old segments, as Kafka's
    /// log.retention.check.interval.ms.
    #[arg(long, value_name = "MS", default_value_t = 300_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub log_retention_check_interval_ms: u64,
    /// Consumer groups of the KIP-848 protocol (group.protocol=consumer): a member not heard
    /// from for this long is removed and its partitions are assigned again (Kafka's
    /// group.consumer.session.timeout.ms).
    #[arg(long, value_name = "MS", default_value_t = 45_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub consumer_session_timeout_ms: u64,
    /// The heartbeat interval told to KIP-848 consumer group members (Kafka's
    /// group.consumer.heartbeat.interval.ms).
    #[arg(long, value_name = "MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=i32::MAX as u64))]
    pub consumer_heartbeat_interval_ms: u64,
}

/// In front of a broker this process does not run.
#[derive(Debug, Args)]
#[command(next_help_heading = "Proxy")]
pub struct ProxyArgs {
    /// Forward clients to this Kafka broker instead of running the embedded one: every request
    /// and response is captured, Metadata, FindCoordinator and DescribeCluster are rewritten to
    /// name the proxy's listeners (one more per upstream broker, on the IP of --listen, port chosen
    /// by the system), and the placement, mutations and faults apply to upstream's responses.
    #[arg(
        long,
        value_name = "HOST:PORT",
        conflicts_with_all = ["pcap", "sniff", "data_dir", "sasl_plain", "advertise", "no_auto_create_topics"]
    )]
    pub proxy: Option<String>,
    /// With --proxy: how long the upstream broker may take to accept a connection or to answer
    /// a request beyond the wait the request asks for (a Fetch's max_wait_ms, a JoinGroup's
    /// rebalance timeout); past it the client's connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub upstream_timeout: u64,
}

/// Sources other than the broker, and recording.
#[derive(Debug, Args)]
#[command(next_help_heading = "Capture")]
pub struct CaptureArgs {
    /// Open a pcap or pcapng capture (also .gz or .zst; - for standard input) instead of running
    /// the broker: the same views.
    #[arg(long, value_name = "FILE", conflicts_with = "sniff")]
    pub pcap: Option<PathBuf>,
    /// Capture live on a network interface (needs root or CAP_NET_RAW) instead of running the
    /// broker: the traffic of a Kafka broker this process does not run.
    #[arg(long, value_name = "IFACE")]
    pub sniff: Option<String>,
    /// TCP port of Kafka brokers in a capture or on the sniffed interface (repeatable; other
    /// connections are recognised by their first request).
    #[arg(long = "kafka-port", value_name = "PORT", default_values_t = [9092u16])]
    pub kafka_ports: Vec<u16>,
    /// Also write every exchange to FILE as it happens: pcapng, JSON lines when FILE ends in
    /// .json or .jsonl, or a Parquet table of the exchanges (one row each, complete once the
    /// run ends) when it ends in .parquet; - writes pcapng to standard output (the exchange
    /// lines then go to standard error).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

/// How the broker answers: the knobs a bug report turns.
#[derive(Debug, Args)]
#[command(next_help_heading = "Placement and faults")]
pub struct PlacementArgs {
    /// Where ProduceResponse puts throttle_time_ms.
    #[arg(long, value_name = "MODE", value_parser = placement_words(), ignore_case = true, default_value = "spec")]
    pub placement: ThrottlePlacement,
    /// A per-client placement rule, client_id=GLOB,software=GLOB,version=GLOB:MODE (any of the
    /// matchers; * and ? wildcards), e.g. 'software=kafka-python*:front'. Repeatable; the first
    /// match wins over --placement.
    #[arg(long = "throttle-rule", value_name = "RULE")]
    pub throttle_rules: Vec<ThrottleRule>,
    /// throttle_time_ms written into every response that has the field.
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..))]
    pub throttle_ms: i32,
    /// Highest version ApiVersions advertises for an API, e.g. produce=2 (API by name or key
    /// number). Repeatable; `cap API=N` changes caps while running.
    #[arg(long = "cap", value_name = "API=N")]
    pub caps: Vec<VersionCap>,
    /// A response mutation, [MATCH:] MUTATION: MATCH is api=NAME, versions=A-B|A|A+,
    /// client_id=GLOB, software=GLOB, version=GLOB (comma-separated, any of them); MUTATION is
    /// move FIELD before|after FIELD, omit FIELD, set FIELD=VALUE, truncate N or corrupt crc
    /// (fields by registry name), e.g. 'api=produce:omit produce.response.throttle_time_ms'.
    /// Repeatable; every matching rule is applied, in order.
    #[arg(long = "mutate", value_name = "RULE")]
    pub mutations: Vec<MutationRule>,
    /// A fault, [MATCH:] FAULT (MATCH as for --mutate): delay MS [jitter MS [seed S]],
    /// error NAME|CODE [first N | probability P [seed S]], drop [first N | probability P [seed
    /// S]], close after N, close mid-response [first N | probability P [seed S]], chunk N
    /// bytes every MS, e.g.
    /// 'api=find_coordinator:error COORDINATOR_NOT_AVAILABLE first 3'. Repeatable.
    #[arg(long = "fault", value_name = "RULE")]
    pub faults: Vec<FaultRule>,
}

/// When the stall detector calls a client stalled.
#[derive(Debug, Args)]
#[command(next_help_heading = "Stall detector")]
pub struct StallArgs {
    /// A client closing its connection within this many ms of a response it could not decode
    /// is "disconnecting".
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub stall_close_after_ms: u64,
    /// A client silent this many ms after a response it could not decode is "stalled".
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub stall_silence_ms: u64,
    /// A request unanswered this many ms (until its connection closed) is "stalled".
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub stall_unanswered_ms: u64,
}

/// What the store keeps.
#[derive(Debug, Args)]
#[command(next_help_heading = "Store")]
pub struct StoreArgs {
    /// Most exchanges the store keeps (the oldest go first).
    #[arg(long, value_name = "N", default_value_t = StoreLimits::default().max_exchanges)]
    pub store_max_exchanges: usize,
    /// Most bytes of frames the store keeps (the oldest go first).
    #[arg(long, value_name = "BYTES", default_value_t = StoreLimits::default().max_bytes)]
    pub store_max_bytes: usize,
    /// Serve (or proxy) without capturing anything: no exchange is kept, printed, linted or
    /// watched by the stall detector, as if no debugger were attached. Only with --headless
    /// and the embedded broker or --proxy; for measuring what capture costs
    /// (benches/broker_cpu.rs).
    #[arg(long)]
    pub no_capture: bool,
}

/// How exchanges are shown.
#[derive(Debug, Args)]
#[command(next_help_heading = "Display")]
pub struct DisplayArgs {
    /// Print exchanges to stdout instead of drawing the terminal UI (also what happens when
    /// stdout is not a terminal).
    #[arg(long)]
    pub headless: bool,
    /// With --headless: JSON lines with the whole decoded tree and byte spans.
    #[arg(long)]
    pub json: bool,
    /// With --headless: how each line's time is written.
    #[arg(long, short = 't', value_name = "FORMAT", value_parser = time_words(), ignore_case = true, default_value = "utc")]
    pub time: TimeFormat,
    /// Colour theme of the terminal UI: dark, light, high-contrast, or a path to a theme file
    /// (see themes/). NO_COLOR in the environment drops colours.
    #[arg(long, value_name = "NAME|PATH")]
    pub theme: Option<String>,
}

/// Logging; accepted before or after a subcommand.
#[derive(Debug, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Write the log (tracing; RUST_LOG sets the level, default info) to FILE. Default: the
    /// broker, the UI and repro log to $XDG_STATE_HOME/chronik-tui/chronik-tui.log (or
    /// ~/.local/state/...); decode, matrix and replay do not log unless given this.
    #[arg(long, value_name = "FILE", global = true)]
    pub log_file: Option<PathBuf>,
    /// Say more: errors with their causes, and debug-level logs.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decode a pcap or pcapng capture and print its exchanges (one line each, JSON lines, or
    /// chosen fields), as tshark does.
    Decode(DecodeArgs),
    /// Name what is wrong with a capture's frames (a field misplaced or missing, bytes left
    /// over, bad lengths, tagged fields, record batches, versions the broker did not advertise,
    /// ...): one line per finding. Exits 0 when nothing is at warning or worse, 1 when something
    /// is, 2 when the capture cannot be read whole.
    Lint(LintArgs),
    /// Run every installed real client through one produce-and-ack in each throttle placement
    /// mode against an embedded broker, and print the compatibility table.
    Matrix(MatrixArgs),
    /// Reproduce a bug report: run a scenario file (TOML: broker settings, then steps that run
    /// real clients, send requests, change settings and expect things) against a fresh
    /// embedded broker, step by step in the terminal UI, or headless with one line per step.
    Repro(ReproArgs),
    /// Send a capture's requests again, per connection and at its pace, to a fresh embedded
    /// broker (or --target), and compare each live response with the recorded one field by
    /// field. Exits 1 when any differs outside the ignore list.
    Replay(ReplayArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to standard output.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output, e.g. `chronik-tui man > chronik-tui.1`.
    Man,
}

/// Arguments of `chronik-tui decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The capture: pcap or pcapng, possibly gzip- or zstd-compressed; - reads standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print JSON lines with the whole decoded tree instead of one line per exchange.
    #[arg(long, conflicts_with = "fields")]
    pub json: bool,
    /// Write the exchanges to a Parquet file (- for standard output) instead of printing them:
    /// one row each, summary fields as columns and both frames as binary (see the README for
    /// the columns). --filter and --count apply.
    #[arg(long, value_name = "OUT", conflicts_with_all = ["json", "fields"])]
    pub parquet: Option<PathBuf>,
    /// Print only the exchanges this display filter keeps (the TUI's language, e.g.
    /// 'api == Produce && produce.response.throttle_time_ms > 0').
    #[arg(long, short = 'Y', value_name = "EXPR")]
    pub filter: Option<String>,
    /// Stop after printing N exchanges.
    #[arg(long, short = 'c', value_name = "N")]
    pub count: Option<u64>,
    /// Print these fields, tab-separated, one exchange a line: built-ins (time, api, version,
    /// conn, corr, client, peer, latency, status, error, throttle, ...) and registry names
    /// (produce.response.throttle_time_ms). Comma-separated or repeated; several values of a
    /// field are joined with commas.
    #[arg(
        long,
        short = 'e',
        value_name = "FIELD,...",
        value_delimiter = ',',
        conflicts_with = "json"
    )]
    pub fields: Vec<String>,
    /// How times are written.
    #[arg(long, short = 't', value_name = "FORMAT", value_parser = time_words(), ignore_case = true, default_value = "utc")]
    pub time: TimeFormat,
    /// TCP port of the Kafka brokers in the capture (repeatable).
    #[arg(long = "kafka-port", value_name = "PORT", default_values_t = [9092u16])]
    pub kafka_ports: Vec<u16>,
}

/// Arguments of `chronik-tui lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// The capture: pcap, pcapng or chronik-tui's JSON lines, possibly gzip- or
    /// zstd-compressed; - reads standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print one JSON object per finding (code, level, side, message, start, end, fix, and the
    /// exchange it is on).
    #[arg(long)]
    pub json: bool,
    /// Print only findings at this level or worse (info, warning, error); the exit code still
    /// counts every finding.
    #[arg(long, value_name = "LEVEL", value_parser = level_words(), ignore_case = true, default_value = "info")]
    pub level: Level,
    /// TCP port of the Kafka brokers in the capture (repeatable).
    #[arg(long = "kafka-port", value_name = "PORT", default_values_t = [9092u16])]
    pub kafka_ports: Vec<u16>,
}

/// Arguments of `chronik-tui repro`.
#[derive(Debug, Args)]
pub struct ReproArgs {
    /// The scenario file (see the README's "Scenarios").
    #[arg(value_name = "SCENARIO")]
    pub file: PathBuf,
    /// One line per step instead of the terminal UI (also when stdout is not a terminal).
    #[arg(long)]
    pub headless: bool,
    /// With --headless: print the report as one JSON object at the end.
    #[arg(long)]
    pub json: bool,
    /// Only check the file, run nothing.
    #[arg(long)]
    pub check: bool,
    /// Run every step even after one failed (by default the rest are skipped).
    #[arg(long)]
    pub keep_going: bool,
    /// Repository root, where the client programs are (default: as `matrix` finds it).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// Arguments of `chronik-tui matrix`.
#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// Print one JSON object per cell instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Longest a cell may take, in seconds (the client's own timeouts are set below it).
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    pub timeout: u64,
    /// Clients to run, comma-separated (default: every one found).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub clients: Option<Vec<String>>,
    /// Placement modes, comma-separated.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        value_parser = placement_words(),
        ignore_case = true,
        default_value = "spec,front,omit"
    )]
    pub modes: Vec<ThrottlePlacement>,
    /// Repository root, where target/venv and tests/clients are (default: $CHRONIK_TUI_ROOT,
    /// else the checkout around the current directory, else the one around this executable).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Cells run at the same time.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub jobs: usize,
    /// Address every cell's broker listens on (default: a free port per cell); cells then run
    /// one at a time, e.g. to record them with tshark.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Highest version the broker advertises for an API, e.g. produce=8 (by name or key
    /// number). Repeatable.
    #[arg(long = "cap", value_name = "API=N")]
    pub caps: Vec<VersionCap>,
}

/// Arguments of `chronik-tui replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The capture: pcap or pcapng (also .gz or .zst; - for standard input), or chronik-tui's
    /// JSON lines (--record FILE.jsonl).
    #[arg(value_name = "CAPTURE")]
    pub file: PathBuf,
    /// Send the requests to this Kafka broker instead of a fresh embedded one.
    #[arg(long, value_name = "HOST:PORT")]
    pub target: Option<String>,
    /// TCP port of the Kafka brokers in the capture (repeatable).
    #[arg(long = "kafka-port", value_name = "PORT", default_values_t = [9092u16])]
    pub kafka_ports: Vec<u16>,
    /// Also ignore this field: a registry name (a group: all under it), or *.NAME for every
    /// field named NAME. Repeatable.
    #[arg(long = "ignore", value_name = "FIELD")]
    pub ignore: Vec<String>,
    /// Compare even the fields that differ by nature (the default ignore list).
    #[arg(long)]
    pub no_default_ignore: bool,
    /// Replay this many times faster than recorded (0.5: half as fast).
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0)]
    pub speed: f64,
    /// Send each request once the responses it followed in the capture are in, without the
    /// capture's pauses.
    #[arg(long, conflicts_with = "speed")]
    pub as_fast_as_possible: bool,
    /// Write the capture as a scenario to FILE instead of replaying it: a step per request,
    /// each expecting the recorded response (see `chronik-tui repro`).
    #[arg(long, value_name = "FILE")]
    pub save_scenario: Option<PathBuf>,
    /// Longest a response may take beyond its recorded latency, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
    /// Print a line per exchange instead of the terminal UI (also what happens when stdout is
    /// not a terminal).
    #[arg(long)]
    pub headless: bool,
    /// Print one JSON object per exchange and a summary object (no terminal UI).
    #[arg(long)]
    pub json: bool,
    /// Colour theme of the terminal UI: dark, light, high-contrast, or a theme file.
    #[arg(long, value_name = "NAME|PATH")]
    pub theme: Option<String>,
    /// Where the embedded broker listens (default: a free port on 127.0.0.1).
    #[arg(long, value_name = "HOST:PORT", help_heading = "Embedded broker")]
    pub listen: Option<String>,
    /// SASL/PLAIN credentials the embedded broker requires (default: those the capture
    /// authenticated with, if it did).
    #[arg(long, value_name = "USER:PASS", help_heading = "Embedded broker")]
    pub sasl_plain: Option<String>,
    /// Do not create unknown topics on Metadata or Produce.
    #[arg(long, help_heading = "Embedded broker")]
    pub no_auto_create_topics: bool,
    /// Partitions of an auto-created topic.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..), help_heading = "Embedded broker")]
    pub default_partitions: i32,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

/// A parser for one word of `all` (any case), whose `--help` lists each word with `help`'s
/// text. (clap's `ValueEnum` cannot be implemented here for types of other crates.)
fn words<T: Copy + Send + Sync + 'static>(
    all: &'static [T],
    word: fn(T) -> &'static str,
    help: fn(T) -> &'static str,
) -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::{PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(
        all.iter()
            .map(|v| PossibleValue::new(word(*v)).help(help(*v))),
    )
    .map(move |text: String| {
        *all.iter()
            .find(|v| word(**v).eq_ignore_ascii_case(&text))
            .expect("clap let through only one of the possible values")
    })
}

fn placement_words() -> impl clap::builder::TypedValueParser<Value = ThrottlePlacement> {
    words(
        &ThrottlePlacement::ALL,
        ThrottlePlacement::word,
        |p| match p {
            ThrottlePlacement::Spec => "after the responses, as Apache Kafka",
            ThrottlePlacement::Front => "before them, as Chronik Stream 0.7.2 did (v1-v8)",
            ThrottlePlacement::Omit => "left out",
        },
    )
}

fn time_words() -> impl clap::builder::TypedValueParser<Value = TimeFormat> {
    words(&TimeFormat::ALL, TimeFormat::word, |t| match t {
        TimeFormat::Utc => "HH:MM:SS.micros in UTC",
        TimeFormat::Local => "HH:MM:SS.micros in the local time zone (TZ)",
        TimeFormat::Relative => "seconds since the first exchange shown",
        TimeFormat::Epoch => "seconds since 1970-01-01 UTC",
    })
}

fn level_words() -> impl clap::builder::TypedValueParser<Value = Level> {
    const ALL: [Level; 3] = [Level::Info, Level::Warning, Level::Error];
    words(&ALL, Level::word, |l| match l {
        Level::Info => "everything, notes that are no one's fault included",
        Level::Warning => "what a correct peer does not send, and worse",
        Level::Error => "what a reader misreads or rejects",
    })
}

/// A command line that parsed but does not make sense: one line, exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// `--listen`'s value as an address.
pub fn listen_addr(flag: &str, text: &str) -> Result<SocketAddr, UsageError> {
    addr::parse_listen(text).map_err(|e| UsageError(addr::flag_error(flag, text, &e)))
}

/// `--advertise`'s (or `--proxy`'s) value as a host and port, the host not resolved.
pub fn host_port(flag: &str, text: &str) -> Result<HostPort, UsageError> {
    addr::parse_host_port(text).map_err(|e| UsageError(addr::flag_error(flag, text, &e)))
}

/// `--data-dir`: a directory, or a path where one can be made.
pub fn data_dir(path: &std::path::Path) -> Result<(), UsageError> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_dir() => Err(UsageError(format!(
            "--data-dir {}: not a directory",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// `--sasl-plain USER:PASS`.
pub fn sasl_plain(text: &str) -> Result<(String, String), UsageError> {
    match text.split_once(':') {
        Some((u, p)) if !u.is_empty() => Ok((u.to_string(), p.to_string())),
        _ => Err(UsageError(format!(
            "--sasl-plain {text}: expected USER:PASS"
        ))),
    }
}

/// Whether a path is `-`, standard input or output.
pub fn is_stdio(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
}

/// The default log file: `$XDG_STATE_HOME/chronik-tui/chronik-tui.log`, else
/// `~/.local/state/chronik-tui/chronik-tui.log`; none when neither variable is set.
pub fn default_log_file() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })?;
    Some(state.join("chronik-tui").join("chronik-tui.log"))
}

/// The `clap::Command` behind [`Cli`], for completions and the man page.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Writes a completion script for `shell`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut command(), "chronik-tui", out);
}

/// Writes the man page (roff), with a page for each subcommand appended as sections.
pub fn man_page(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let cmd = command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render(out)?;
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() {
            continue;
        }
        let name = format!("chronik-tui {}", sub.get_name());
        writeln!(out, ".SH \"{}\"", name.to_uppercase())?;
        let sub = sub.clone().name(name.clone()).bin_name(name);
        let man = clap_mangen::Man::new(sub);
        man.render_synopsis_section(out)?;
        man.render_description_section(out)?;
        man.render_options_section(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        Cli::try_parse_from(std::iter::once("chronik-tui").chain(args.iter().copied()))
            .map_err(|e| e.kind().to_string())
    }

    #[test]
    fn definitions_are_consistent() {
        command().debug_assert();
    }

    #[test]
    fn placement_and_time_take_any_case_and_list_their_choices() {
        let cli = parse(&["--placement", "FRONT", "--time", "Epoch"]).unwrap();
        assert_eq!(cli.placement.placement, ThrottlePlacement::Front);
        assert_eq!(cli.display.time, TimeFormat::Epoch);
        let help = command().render_long_help().to_string();
        for word in ["spec", "front", "omit", "utc", "local", "relative", "epoch"] {
            assert!(help.contains(word), "--help lists {word}");
        }
        for heading in [
            "Broker:",
            "Capture:",
            "Placement and faults:",
            "Stall detector:",
            "Store:",
            "Display:",
            "Logging:",
        ] {
            assert!(help.contains(heading), "--help has the heading {heading}");
        }
    }

    #[test]
    fn log_file_before_or_after_the_subcommand() {
        for args in [
            &["--log-file", "x.log", "decode", "a.pcap"][..],
            &["decode", "a.pcap", "--log-file", "x.log"][..],
        ] {
            let cli = parse(args).unwrap();
            assert_eq!(cli.log.log_file, Some(PathBuf::from("x.log")), "{args:?}");
        }
    }

    #[test]
    fn decode_flags_as_tshark_spells_them() {
        let cli = parse(&[
            "decode",
            "-",
            "-Y",
            "api == Produce",
            "-c",
            "3",
            "-e",
            "api,corr",
            "-e",
            "time",
            "-t",
            "relative",
        ])
        .unwrap();
        let Some(Command::Decode(d)) = cli.command else {
            panic!("decode");
        };
        assert!(is_stdio(&d.file));
        assert_eq!(d.filter.as_deref(), Some("api == Produce"));
        assert_eq!(d.count, Some(3));
        assert_eq!(d.fields, ["api", "corr", "time"]);
        assert_eq!(d.time, TimeFormat::Relative);
        assert!(parse(&["decode", "x", "--json", "--fields", "api"]).is_err());
        // --parquet writes instead of printing: not with --json or --fields, with -Y and -c.
        let cli = parse(&[
            "decode",
            "x",
            "--parquet",
            "out.parquet",
            "-Y",
            "api",
            "-c",
            "2",
        ])
        .unwrap();
        let Some(Command::Decode(d)) = cli.command else {
            panic!("decode");
        };
        assert_eq!(
            d.parquet.as_deref(),
            Some(std::path::Path::new("out.parquet"))
        );
        assert_eq!((d.filter.as_deref(), d.count), (Some("api"), Some(2)));
        assert!(parse(&["decode", "x", "--parquet", "o", "--json"]).is_err());
        assert!(parse(&["decode", "x", "--parquet", "o", "-e", "api"]).is_err());
    }

    #[test]
    fn usage_errors_name_the_flag() {
        assert_eq!(
            listen_addr("--listen", "99999").unwrap_err().0,
            "--listen 99999: port out of range"
        );
        assert_eq!(
            listen_addr("--listen", "127.0.0.1:99999").unwrap_err().0,
            "--listen 127.0.0.1:99999: port out of range"
        );
        assert_eq!(
            host_port("--advertise", "broker:x").unwrap_err().0,
            "--advertise broker:x: \"x\" is not a port (expected PORT or HOST:PORT)"
        );
        assert_eq!(
            sasl_plain("alice").unwrap_err().0,
            "--sasl-plain alice: expected USER:PASS"
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        assert_eq!(
            data_dir(file.path()).unwrap_err().0,
            format!("--data-dir {}: not a directory", file.path().display())
        );
        assert!(data_dir(std::path::Path::new("/nonexistent/new-dir")).is_ok());
    }

    #[test]
    fn completions_and_man_page_come_from_the_definitions() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            completions(shell, &mut out);
            let text = String::from_utf8(out).unwrap();
            // fish spells a long flag `-l listen`.
            let flags: [&str; 2] = if shell == clap_complete::Shell::Fish {
                ["-l listen", "-l placement"]
            } else {
                ["--listen", "--placement"]
            };
            for word in flags.iter().chain(&["decode", "matrix"]) {
                assert!(text.contains(word), "{shell} completion has {word}");
            }
        }
        let mut out = Vec::new();
        man_page(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(".ie \\n(.g .ds Aq") || text.contains(".TH chronik-tui"));
        for word in ["listen", "placement", "CHRONIK-TUI DECODE", "filter"] {
            assert!(text.contains(word), "man page has {word}");
        }
    }
}
