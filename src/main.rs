//! chronik-tui: wires a source to the store and a view; nothing else.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use chronik_tui::broker::{self, BrokerConfig};
use chronik_tui::capture::{Store, StoreLimits};
use chronik_tui::headless;
use chronik_tui::protocol::frame::DEFAULT_MAX_FRAME_BYTES;
use chronik_tui::settings::{Knobs, Settings};

/// A Kafka wire-protocol workbench: an embedded broker that real clients use, with every request
/// and response captured and decoded down to the byte.
#[derive(Debug, Parser)]
#[command(name = "chronik-tui", version)]
struct Cli {
    /// What to run instead of the broker (none: the broker and its views).
    #[command(subcommand)]
    command: Option<Command>,
    /// Address the embedded broker listens on.
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// host:port advertised to clients in Metadata (default: the listen address).
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Print exchanges to stdout instead of drawing the terminal UI (also what happens when
    /// stdout is not a terminal).
    #[arg(long)]
    headless: bool,
    /// Open a pcap or pcapng capture instead of running the broker (the same views).
    #[arg(long, value_name = "FILE", conflicts_with = "sniff")]
    pcap: Option<PathBuf>,
    /// Capture live on a network interface (needs root or CAP_NET_RAW) instead of running the
    /// broker: the traffic of a Kafka broker this process does not run.
    #[arg(long, value_name = "IFACE")]
    sniff: Option<String>,
    /// TCP port of Kafka brokers in a capture or on the sniffed interface (repeatable; other
    /// connections are recognised by their first request).
    #[arg(long = "kafka-port", value_name = "PORT", default_values_t = [9092u16])]
    kafka_ports: Vec<u16>,
    /// Also write every exchange to FILE as it happens: pcapng, or JSON lines when FILE ends
    /// in .json or .jsonl.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Colour theme of the terminal UI: dark, light, high-contrast, or a path to a theme
    /// file (see themes/). NO_COLOR in the environment drops colours.
    #[arg(long, value_name = "NAME|PATH")]
    theme: Option<String>,
    /// With --headless: print JSON lines with the whole decoded tree and byte spans.
    #[arg(long)]
    json: bool,
    /// Largest request frame accepted (bytes), checked before allocating.
    #[arg(long, default_value_t = DEFAULT_MAX_FRAME_BYTES)]
    max_frame_bytes: usize,
    /// Keep partition logs in segment files under DIR, recovered on restart.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Require SASL/PLAIN with these credentials.
    #[arg(long, value_name = "USER:PASS")]
    sasl_plain: Option<String>,
    /// Do not create unknown topics on Metadata or Produce.
    #[arg(long)]
    no_auto_create_topics: bool,
    /// Partitions of an auto-created topic.
    #[arg(long, default_value_t = 1)]
    default_partitions: i32,
    /// Most exchanges the store keeps.
    #[arg(long, default_value_t = StoreLimits::default().max_exchanges)]
    store_max_exchanges: usize,
    /// Most bytes of frames the store keeps.
    #[arg(long, default_value_t = StoreLimits::default().max_bytes)]
    store_max_bytes: usize,
    /// Log file (tracing); never the terminal.
    #[arg(long, default_value = "chronik-tui.log")]
    log_file: PathBuf,
    /// Where ProduceResponse puts throttle_time_ms: spec (after the responses, as Apache Kafka),
    /// front (before them, as Chronik Stream 0.7.2 did; v1-v8 only) or omit.
    #[arg(long, value_name = "MODE", default_value = "spec")]
    placement: chronik_tui::settings::ThrottlePlacement,
    /// A per-client placement rule, client_id=GLOB,software=GLOB,version=GLOB:MODE (any of the
    /// matchers; * and ? wildcards), e.g. 'software=kafka-python*:front'. Repeatable; the first
    /// match wins over --placement.
    #[arg(long = "throttle-rule", value_name = "RULE")]
    throttle_rules: Vec<chronik_tui::settings::ThrottleRule>,
    /// throttle_time_ms written into every response that has the field.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..))]
    throttle_ms: i32,
    /// Highest version ApiVersions advertises for an API, e.g. produce=2 (API by name or key
    /// number). Repeatable; with --headless, `cap API=N` on stdin changes caps while running.
    #[arg(long = "cap", value_name = "API=N")]
    caps: Vec<chronik_tui::settings::VersionCap>,
    /// Stall detector: a client closing its connection within this many ms of a response it
    /// could not decode is "disconnecting".
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    stall_close_after_ms: u64,
    /// Stall detector: a client silent this many ms after a response it could not decode is
    /// "stalled".
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    stall_silence_ms: u64,
    /// Stall detector: a request unanswered this many ms (until its connection closed) is
    /// "stalled".
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    stall_unanswered_ms: u64,
}

/// The source's progress line for the status bar.
type SourceStatus = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Runs every installed real client through one produce-and-ack in each throttle placement
    /// mode against an embedded broker, and prints the compatibility table.
    Matrix(MatrixArgs),
    /// Decodes a pcap or pcapng capture and prints its exchanges (the headless line or JSON
    /// formats).
    Decode(DecodeArgs),
}

/// Arguments of `chronik-tui decode`.
#[derive(Debug, clap::Args)]
struct DecodeArgs {
    /// The capture file (pcap or pcapng).
    file: PathBuf,
    /// Print JSON lines with the whole decoded tree instead of one line per exchange.
    #[arg(long)]
    json: bool,
    /// TCP port of the Kafka brokers in the capture (repeatable).
    #[arg(long = "kafka-port", value_name = "PORT", default_values_t = [9092u16])]
    kafka_ports: Vec<u16>,
}

fn stream_options(
    ports: &[u16],
    max_frame_bytes: usize,
) -> chronik_tui::capture::pcap::kafka_stream::StreamOptions {
    chronik_tui::capture::pcap::kafka_stream::StreamOptions {
        kafka_ports: ports.to_vec(),
        max_frame_bytes,
        ..Default::default()
    }
}

/// `chronik-tui decode FILE`: prints each exchange as the file is read.
fn run_decode(args: DecodeArgs) -> anyhow::Result<()> {
    use chronik_tui::capture::pcap::source;
    use std::io::Write;
    // Exchanges are printed as they are made; the store only numbers them, so it stays small
    // and a capture of any size decodes in bounded memory.
    let store = Store::new(StoreLimits {
        max_exchanges: 1024,
        max_bytes: 16 << 20,
    });
    let total = std::fs::metadata(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?
        .len();
    let progress = source::Progress::new(format!("pcap {}", args.file.display()), total);
    let json = args.json;
    let out = std::sync::Arc::new(std::sync::Mutex::new(std::io::BufWriter::new(
        std::io::stdout(),
    )));
    let sink_out = out.clone();
    source::read_file_with(
        &args.file,
        stream_options(&args.kafka_ports, DEFAULT_MAX_FRAME_BYTES),
        store.clone(),
        progress.clone(),
        Some(Box::new(move |ex| {
            let text = headless::render(ex, json);
            if let Ok(mut w) = sink_out.lock() {
                let _ = writeln!(w, "{text}");
            }
        })),
    );
    if let Ok(mut w) = out.lock() {
        w.flush()?;
    }
    for e in progress.errors() {
        eprintln!("chronik-tui decode: {e}");
    }
    eprintln!("chronik-tui decode: {}", progress.status());
    Ok(())
}

/// Arguments of `chronik-tui matrix`.
#[derive(Debug, clap::Args)]
struct MatrixArgs {
    /// Print one JSON object per cell instead of the table.
    #[arg(long)]
    json: bool,
    /// Longest a cell may take, in seconds (the client's own timeouts are set below it).
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    timeout: u64,
    /// Clients to run, comma-separated (default: every one found).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    clients: Option<Vec<String>>,
    /// Placement modes, comma-separated.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "spec,front,omit"
    )]
    modes: Vec<chronik_tui::settings::ThrottlePlacement>,
    /// Repository root, where target/venv and tests/clients are (default: $CHRONIK_TUI_ROOT,
    /// else the checkout around the current directory, else the one around this executable).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Cells run at the same time.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Address every cell's broker listens on (default: a free port per cell); cells then run
    /// one at a time, e.g. to record them with tshark.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Highest version the broker advertises for an API, e.g. produce=8 (by name or key
    /// number). Repeatable.
    #[arg(long = "cap", value_name = "API=N")]
    caps: Vec<chronik_tui::settings::VersionCap>,
}

async fn run_matrix(args: MatrixArgs) -> anyhow::Result<()> {
    use chronik_tui::matrix;
    let fail = |why: String| -> ! {
        eprintln!("chronik-tui matrix: {why}");
        std::process::exit(1)
    };
    let root = matrix::resolve_root(args.root.as_deref()).unwrap_or_else(|e| fail(e));
    let opts = matrix::MatrixOptions {
        root: root.dir.clone(),
        timeout: std::time::Duration::from_secs(args.timeout.max(1)),
        clients: args.clients,
        modes: args.modes,
        jobs: args.jobs,
        listen: args.listen,
        caps: args
            .caps
            .iter()
            .map(|c| (c.api_key, c.max_version))
            .collect(),
    };
    let m = matrix::run(&opts).await?;
    if let Err(why) = matrix::check_some_ran(&m, &root) {
        fail(why);
    }
    if args.json {
        for cell in &m.cells {
            println!("{}", serde_json::to_string(cell)?);
        }
        for miss in &m.missing {
            eprintln!(
                "chronik-tui matrix: not found: {}: {}",
                miss.client, miss.reason
            );
        }
    } else {
        print!("{}", matrix::render_table(&m));
    }
    Ok(())
}

fn parse_host_port(s: &str) -> anyhow::Result<(String, u16)> {
    let (h, p) = s
        .rsplit_once(':')
        .with_context(|| format!("expected HOST:PORT, got {s:?}"))?;
    Ok((
        h.trim_matches(|c| c == '[' || c == ']').to_string(),
        p.parse().with_context(|| format!("bad port in {s:?}"))?,
    ))
}

fn init_logging(path: &PathBuf) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening log file {}", path.display()))?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .init();
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log_file)?;
    match cli.command {
        Some(Command::Matrix(args)) => return run_matrix(args).await,
        Some(Command::Decode(args)) => {
            return tokio::task::spawn_blocking(move || run_decode(args)).await?
        }
        None => {}
    }
    let sasl_plain = match &cli.sasl_plain {
        Some(s) => {
            let (u, p) = s
                .split_once(':')
                .context("--sasl-plain expects USER:PASS")?;
            Some((u.to_string(), p.to_string()))
        }
        None => None,
    };
    let config = BrokerConfig {
        listen: cli.listen,
        advertise: cli.advertise.as_deref().map(parse_host_port).transpose()?,
        max_frame_bytes: cli.max_frame_bytes,
        data_dir: cli.data_dir.clone(),
        sasl_plain,
        auto_create_topics: !cli.no_auto_create_topics,
        default_partitions: cli.default_partitions,
        ..BrokerConfig::default()
    };
    let store = Store::new(StoreLimits {
        max_exchanges: cli.store_max_exchanges,
        max_bytes: cli.store_max_bytes,
    });
    let settings = Settings::new(Knobs {
        placement: cli.placement,
        rules: cli.throttle_rules.clone(),
        throttle_ms: cli.throttle_ms,
        caps: cli
            .caps
            .iter()
            .map(|c| (c.api_key, c.max_version))
            .collect(),
        stall: chronik_tui::settings::StallThresholds {
            close_after_response: std::time::Duration::from_millis(cli.stall_close_after_ms),
            silence: std::time::Duration::from_millis(cli.stall_silence_ms),
            unanswered: std::time::Duration::from_millis(cli.stall_unanswered_ms),
        },
    });
    // Client detection and the stall detector, on the store's feeds (subscribed before the
    // broker starts, so it sees every connection).
    let clients = chronik_tui::diagnose::spawn(&store, settings.clone());
    let headless = cli.headless || !std::io::stdout().is_terminal();
    if !cli.headless && headless {
        eprintln!("chronik-tui: stdout is not a terminal; printing exchanges as with --headless");
    }
    if headless && cli.record.is_none() {
        if let Some(path) = cli.pcap.clone() {
            // Printing a whole file as it is read is what `decode` does (in order, nothing
            // dropped however fast the file is read).
            let json = cli.json;
            return tokio::task::spawn_blocking(move || {
                run_decode(DecodeArgs {
                    file: path,
                    json,
                    kafka_ports: cli.kafka_ports.clone(),
                })
            })
            .await?;
        }
    }
    let opts = stream_options(&cli.kafka_ports, cli.max_frame_bytes);
    // The recorder subscribes before the source starts, so it misses nothing (exchanges name
    // their broker side; the listen address is for those that do not).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let recorder = match &cli.record {
        Some(path) => Some(
            chronik_tui::capture::pcap::record::spawn_recorder(
                store.clone(),
                path.clone(),
                cli.listen,
                stop_rx,
            )
            .with_context(|| format!("creating {}", path.display()))?,
        ),
        None => None,
    };
    // The source: a capture file, a live interface, or (the default) the embedded broker.
    let mut sniffer = None;
    let mut broker_handle = None;
    let mut file_progress = None;
    let (label, source_status, server): (String, Option<SourceStatus>, SocketAddr) =
        if let Some(path) = &cli.pcap {
            let progress =
                chronik_tui::capture::pcap::source::spawn_file(path.clone(), opts, store.clone())
                    .with_context(|| format!("opening {}", path.display()))?;
            let p = progress.clone();
            file_progress = Some(progress.clone());
            (
                progress.label.clone(),
                Some(std::sync::Arc::new(move || p.status())),
                "127.0.0.1:9092".parse()?,
            )
        } else if let Some(iface) = &cli.sniff {
            let s = chronik_tui::capture::pcap::sniff::start(iface, opts, store.clone())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let p = s.progress.clone();
            let label = p.label.clone();
            sniffer = Some(s);
            (
                label,
                Some(std::sync::Arc::new(move || p.status())),
                "127.0.0.1:9092".parse()?,
            )
        } else {
            let handle = broker::start(config, store.clone(), settings.clone())
                .await
                .with_context(|| format!("starting the broker on {}", cli.listen))?;
            tracing::info!(addr = %handle.local_addr, "broker listening");
            let addr = handle.local_addr;
            broker_handle = Some(handle);
            (format!("broker {addr}"), None, addr)
        };
    let result = if !headless {
        let (theme, warning) = chronik_tui::tui::theme::resolve(
            cli.theme.as_deref(),
            chronik_tui::tui::theme::no_color_requested(),
        );
        if let Some(w) = &warning {
            tracing::warn!("{w}");
        }
        let result = chronik_tui::tui::run(chronik_tui::tui::AppDeps {
            store: store.clone(),
            settings: settings.clone(),
            clients: Some(clients),
            theme,
            source: label.clone(),
            startup_message: warning.or_else(|| Some(format!("{label}; ? for help"))),
            source_status,
            export_server: server,
        })
        .await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "terminal UI failed");
        }
        result
    } else {
        tokio::spawn(headless::print_client_states(clients.subscribe(), cli.json));
        if broker_handle.is_some() {
            // Commands on stdin (`placement front`, `rule add …`, `clients`); EOF ends only this.
            let table = clients.clone();
            let control = chronik_tui::control::Control::new(settings.clone())
                .with_clients_hook(Box::new(move || table.render()))
                .with_markers(store.clone(), "stdin");
            tokio::spawn(chronik_tui::control::run_stdin(control, cli.json));
        }
        let printer = tokio::spawn(headless::print_live(store.subscribe(), cli.json));
        match &broker_handle {
            Some(h) => eprintln!("chronik-tui: broker listening on {}", h.local_addr),
            None => eprintln!("chronik-tui: reading {label}"),
        }
        // A capture file ends: stop once it is read and printed.
        let file_read = async {
            match &file_progress {
                Some(p) => {
                    while !p.done.load(std::sync::atomic::Ordering::Relaxed) {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    for e in p.errors() {
                        eprintln!("chronik-tui: {e}");
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = printer => {}
            _ = file_read => {}
        }
        Ok(())
    };
    if let Some(s) = sniffer {
        let _ = tokio::task::spawn_blocking(move || s.stop()).await;
    }
    let _ = stop_tx.send(true);
    if let Some(r) = recorder {
        match r.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("chronik-tui: recording failed: {e}"),
            Err(e) => eprintln!("chronik-tui: recording failed: {e}"),
        }
    }
    // Exit now: the runtime would otherwise wait for the blocking thread that reads stdin
    // (headless commands), which only ends with a line or end of input.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("chronik-tui: {e:#}");
            std::process::exit(1)
        }
    }
}
