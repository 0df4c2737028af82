//! chronik-tui: wires a source to the store and a view; nothing else.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use chronik_tui::broker::{self, BrokerConfig};
use chronik_tui::capture::pcap::kafka_stream::StreamOptions;
use chronik_tui::capture::pcap::source::{self, Input, Progress};
use chronik_tui::capture::render::Clock;
use chronik_tui::capture::{Store, StoreLimits};
use chronik_tui::cli::{self, Cli, Command, DecodeArgs, MatrixArgs, ReproArgs, UsageError};
use chronik_tui::decode::{self, DecodeError, DecodeOptions};
use chronik_tui::headless::{self, Out};
use chronik_tui::settings::{Knobs, Settings, StallThresholds};

fn main() -> ExitCode {
    // clap prints --help and --version and exits 0, and a usage error with exit code 2.
    let cli = Cli::parse();
    let verbose = cli.log.verbose;
    let result = tokio::runtime::Runtime::new()
        .context("starting the runtime")
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(code) => code,
        // A reader that went away (`chronik-tui man | head`) ends the output, nothing more.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line naming what is at fault; the causes only when asked for.
            if verbose {
                eprintln!("chronik-tui: {e:?}");
            } else {
                eprintln!("chronik-tui: {e:#}");
            }
            let usage = e.downcast_ref::<UsageError>().is_some()
                || matches!(e.downcast_ref::<DecodeError>(), Some(DecodeError::Usage(_)));
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let explicit_log = cli.log.log_file.clone();
    let verbose = cli.log.verbose;
    match cli.command {
        Some(Command::Decode(args)) => {
            init_logging(explicit_log.as_deref(), verbose)?;
            let opts = decode_options(args);
            tokio::task::spawn_blocking(move || decode::run(opts)).await??;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Lint(args)) => {
            init_logging(explicit_log.as_deref(), verbose)?;
            let opts = chronik_tui::lint::LintOptions {
                stream: stream_options(
                    &args.kafka_ports,
                    chronik_tui::protocol::frame::DEFAULT_MAX_FRAME_BYTES,
                ),
                file: args.file,
                json: args.json,
                min_level: args.level,
            };
            Ok(tokio::task::spawn_blocking(move || chronik_tui::lint::run(opts)).await?)
        }
        Some(Command::Matrix(args)) => {
            init_logging(explicit_log.as_deref(), verbose)?;
            run_matrix(args).await
        }
        Some(Command::Repro(args)) => {
            let warning = init_default_logging(explicit_log.as_deref(), verbose)?;
            run_repro(args, warning).await
        }
        Some(Command::Replay(args)) => {
            init_logging(explicit_log.as_deref(), verbose)?;
            chronik_tui::replay::run(args).await
        }
        Some(Command::Completions { shell }) => {
            cli::completions(shell, &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Man) => {
            cli::man_page(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        None => run_views(cli).await,
    }
}

fn stream_options(ports: &[u16], max_frame_bytes: usize) -> StreamOptions {
    StreamOptions {
        kafka_ports: ports.to_vec(),
        max_frame_bytes,
        ..Default::default()
    }
}

fn decode_options(args: DecodeArgs) -> DecodeOptions {
    DecodeOptions {
        stream: stream_options(
            &args.kafka_ports,
            chronik_tui::protocol::frame::DEFAULT_MAX_FRAME_BYTES,
        ),
        file: args.file,
        json: args.json,
        filter: args.filter,
        count: args.count,
        fields: args.fields,
        time: args.time,
        parquet: args.parquet,
    }
}

async fn run_matrix(args: MatrixArgs) -> anyhow::Result<ExitCode> {
    use chronik_tui::matrix;
    let listen = args
        .listen
        .as_deref()
        .map(|l| cli::listen_addr("--listen", l))
        .transpose()?;
    let root = match matrix::resolve_root(args.root.as_deref()) {
        Ok(root) => root,
        Err(why) => {
            eprintln!("chronik-tui matrix: {why}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let opts = matrix::MatrixOptions {
        root: root.dir.clone(),
        timeout: std::time::Duration::from_secs(args.timeout.max(1)),
        clients: args.clients,
        modes: args.modes,
        jobs: args.jobs,
        listen,
        caps: args
            .caps
            .iter()
            .map(|c| (c.api_key, c.max_version))
            .collect(),
    };
    let m = matrix::run(&opts).await?;
    if let Err(why) = matrix::check_some_ran(&m, &root) {
        eprintln!("chronik-tui matrix: {why}");
        return Ok(ExitCode::FAILURE);
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
    Ok(ExitCode::SUCCESS)
}

/// `chronik-tui repro FILE`: checks the scenario (a bad file is a usage error naming the line
/// and column), then runs it: headless, one line per step (or a JSON report), exit code 0 only
/// when every expectation held.
async fn run_repro(args: ReproArgs, log_warning: Option<String>) -> anyhow::Result<ExitCode> {
    use chronik_tui::scenario::{self, Scenario};
    let scenario =
        Scenario::load(&args.file).map_err(|e| anyhow::Error::new(UsageError(e.to_string())))?;
    if args.check {
        println!(
            "{}: {} ({} steps) is well-formed",
            args.file.display(),
            scenario.name,
            scenario.steps.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let root = chronik_tui::matrix::resolve_root(args.root.as_deref())
        .ok()
        .map(|r| r.dir);
    if !args.headless && !args.json && std::io::stdout().is_terminal() {
        return repro_ui(scenario, root, &args.file, log_warning).await;
    }
    if let Some(w) = log_warning {
        eprintln!("chronik-tui: {w}");
    }
    let json = args.json;
    if !json {
        println!("scenario: {} ({})", scenario.name, args.file.display());
    }
    let report = scenario::run(scenario, root, args.keep_going, |step, total| {
        if !json {
            println!("{}", step.line(total));
        }
    })
    .await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let held: usize = report
            .steps
            .iter()
            .map(|s| s.outcomes.iter().filter(|o| o.held).count())
            .sum();
        let expected: usize = report.steps.iter().map(|s| s.outcomes.len()).sum();
        println!(
            "{}: {}/{} steps passed, {held}/{expected} expectations held",
            if report.passed { "PASS" } else { "FAIL" },
            report.steps.iter().filter(|s| s.passed).count(),
            report.steps.len()
        );
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `repro` in the terminal UI: the scenario's broker as the source, the step panel above the
/// exchanges; n runs the next step, r to the end or the first failure, b restarts.
async fn repro_ui(
    scenario: chronik_tui::scenario::Scenario,
    root: Option<std::path::PathBuf>,
    file: &Path,
    log_warning: Option<String>,
) -> anyhow::Result<ExitCode> {
    use chronik_tui::scenario::{drive, run::Runner};
    let mut runner = Runner::new(scenario, root);
    let addr = runner.start().await?;
    let deps = chronik_tui::tui::AppDeps {
        store: runner.store.clone(),
        settings: runner.settings.clone(),
        clients: Some(runner.detector.clone()),
        theme: chronik_tui::tui::theme::resolve(
            None,
            chronik_tui::tui::theme::no_color_requested(),
        )
        .0,
        source: format!("repro {} · broker {addr}", file.display()),
        startup_message: Some(log_warning.unwrap_or_else(|| {
            "n: next step · r: run to the end or the first failure · b: restart · ? for help".into()
        })),
        source_status: None,
        export_server: addr,
        steps: Some(drive::spawn(runner, addr.to_string())),
    };
    chronik_tui::tui::run(deps).await?;
    Ok(ExitCode::SUCCESS)
}

/// Sets up `tracing` to write to `path`, or with none to the default log file when `default`
/// (the broker and the UI); decode and matrix log only when given a file. An explicit file
/// that cannot be opened is an error; the default one is only warned about (returned).
fn init_logging(path: Option<&Path>, verbose: bool) -> anyhow::Result<()> {
    if let Some(path) = path {
        let file = open_log(path).with_context(|| format!("--log-file {}", path.display()))?;
        install_logger(file, verbose);
    }
    Ok(())
}

/// The broker's and the UI's logging: the given file, else the default one. A default that
/// cannot be written is a warning (returned), not a failure.
fn init_default_logging(path: Option<&Path>, verbose: bool) -> anyhow::Result<Option<String>> {
    if path.is_some() {
        init_logging(path, verbose)?;
        return Ok(None);
    }
    let Some(default) = cli::default_log_file() else {
        return Ok(Some(
            "not logging: neither XDG_STATE_HOME nor HOME is set (use --log-file)".into(),
        ));
    };
    let opened = default
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|_| open_log(&default));
    match opened {
        Ok(file) => {
            install_logger(file, verbose);
            Ok(None)
        }
        Err(e) => Ok(Some(format!(
            "not logging: {}: {e} (use --log-file)",
            default.display()
        ))),
    }
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

fn install_logger(file: std::fs::File, verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.into()),
        )
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .init();
}

/// Everything the views need that comes from the flags, checked before anything starts.
struct Checked {
    listen: SocketAddr,
    config: BrokerConfig,
    /// With `--proxy`: the proxy instead of the embedded broker.
    proxy: Option<broker::proxy::ProxyConfig>,
    /// Where the exchange lines go: stdout, or stderr when stdout carries `--record -`.
    out: Out,
    headless: bool,
}

fn check(cli: &Cli) -> Result<Checked, UsageError> {
    let b = &cli.broker;
    let listen = cli::listen_addr("--listen", &b.listen)?;
    let advertise = b
        .advertise
        .as_deref()
        .map(|a| cli::host_port("--advertise", a).map(|hp| (hp.host, hp.port)))
        .transpose()?;
    if let Some(dir) = &b.data_dir {
        cli::data_dir(dir)?;
    }
    let sasl_plain = b.sasl_plain.as_deref().map(cli::sasl_plain).transpose()?;
    let proxy = cli
        .proxy
        .proxy
        .as_deref()
        .map(|p| cli::host_port("--proxy", p))
        .transpose()?
        .map(|hp| broker::proxy::ProxyConfig {
            listen,
            upstream: hp,
            max_frame_bytes: b.max_frame_bytes,
            timeout: std::time::Duration::from_secs(cli.proxy.upstream_timeout),
        });
    let stdout_is_terminal = std::io::stdout().is_terminal();
    let record_to_stdout = cli.capture.record.as_deref().is_some_and(cli::is_stdio);
    if record_to_stdout && stdout_is_terminal {
        return Err(UsageError(
            "--record -: standard output is a terminal; pipe it to a program \
             (| wireshark -k -i -) or name a file"
                .into(),
        ));
    }
    if cli.store.no_capture {
        let conflict = [
            (cli.capture.pcap.is_some(), "--pcap"),
            (cli.capture.sniff.is_some(), "--sniff"),
            (cli.capture.record.is_some(), "--record"),
            (cli.display.json, "--json"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag));
        if let Some(flag) = conflict {
            return Err(UsageError(format!(
                "--no-capture captures nothing, so {flag} has nothing to work on"
            )));
        }
        if !cli.display.headless && stdout_is_terminal {
            return Err(UsageError(
                "--no-capture needs --headless: the terminal UI shows what is captured".into(),
            ));
        }
    }
    let config = BrokerConfig {
        listen,
        advertise,
        max_frame_bytes: b.max_frame_bytes,
        data_dir: b.data_dir.clone(),
        sasl_plain,
        auto_create_topics: !b.no_auto_create_topics,
        default_partitions: b.default_partitions,
        fsync: b.fsync.parse().map_err(UsageError)?,
        fsync_interval: std::time::Duration::from_millis(b.fsync_interval_ms),
        retention_check_interval: std::time::Duration::from_millis(
            b.log_retention_check_interval_ms,
        ),
        consumer_session_timeout_ms: b.consumer_session_timeout_ms,
        consumer_heartbeat_interval_ms: b.consumer_heartbeat_interval_ms,
        ..BrokerConfig::default()
    };
    Ok(Checked {
        listen,
        config,
        proxy,
        out: if record_to_stdout {
            Out::Stderr
        } else {
            Out::Stdout
        },
        headless: cli.display.headless || !stdout_is_terminal,
    })
}

/// The source chosen by the flags, started.
struct Source {
    /// For the status bar: `broker 127.0.0.1:9092`, `pcap FILE`, `sniff IFACE`.
    label: String,
    /// A file or interface being read.
    progress: Option<Arc<Progress>>,
    sniffer: Option<chronik_tui::capture::pcap::sniff::Sniffer>,
    broker: Option<broker::BrokerHandle>,
    proxy: Option<broker::proxy::ProxyHandle>,
    /// The broker address exports name for exchanges that name none.
    server: SocketAddr,
}

async fn start_source(
    cli: &Cli,
    checked: &Checked,
    store: &Arc<Store>,
    settings: &Arc<Settings>,
    input: Option<Input>,
) -> anyhow::Result<Source> {
    let opts = stream_options(&cli.capture.kafka_ports, cli.broker.max_frame_bytes);
    let default_server: SocketAddr = "127.0.0.1:9092".parse()?;
    if let Some(input) = input {
        let progress = source::spawn_input(input, opts, store.clone())?;
        return Ok(Source {
            label: progress.label.clone(),
            progress: Some(progress),
            sniffer: None,
            broker: None,
            proxy: None,
            server: default_server,
        });
    }
    if let Some(iface) = &cli.capture.sniff {
        let s = chronik_tui::capture::pcap::sniff::start(iface, opts, store.clone())
            .map_err(|e| anyhow::anyhow!("--sniff {iface}: {e}"))?;
        return Ok(Source {
            label: s.progress.label.clone(),
            progress: Some(s.progress.clone()),
            sniffer: Some(s),
            broker: None,
            proxy: None,
            server: default_server,
        });
    }
    if let Some(config) = &checked.proxy {
        let upstream = config.upstream.clone();
        let handle = broker::proxy::start(config.clone(), store.clone(), settings.clone()).await?;
        let addr = handle.local_addr;
        tracing::info!(%addr, %upstream, "proxy listening");
        let label = match chronik_tui::addr::beyond_loopback(&addr) {
            Some(note) => format!("proxy {addr} -> {upstream} ({note})"),
            None => format!("proxy {addr} -> {upstream}"),
        };
        return Ok(Source {
            label,
            progress: None,
            sniffer: None,
            broker: None,
            proxy: Some(handle),
            server: addr,
        });
    }
    let handle = broker::start(checked.config.clone(), store.clone(), settings.clone()).await?;
    let addr = handle.local_addr;
    tracing::info!(%addr, "broker listening");
    let label = match chronik_tui::addr::beyond_loopback(&addr) {
        Some(note) => format!("broker {addr} ({note})"),
        None => format!("broker {addr}"),
    };
    Ok(Source {
        label,
        progress: None,
        sniffer: None,
        broker: Some(handle),
        proxy: None,
        server: addr,
    })
}

/// SIGINT (Ctrl-C) and SIGTERM, listened for from the moment this is made: both end a run the
/// same clean way. Made before the source starts, so a signal sent as soon as the broker says
/// where it listens is not the default action (which would kill the process unclean).
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// The next SIGINT or SIGTERM.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

async fn run_views(cli: Cli) -> anyhow::Result<ExitCode> {
    let checked = check(&cli)?;
    // A capture is opened (and its header read) before anything starts, so a file that is not
    // a capture fails at once.
    let input = match &cli.capture.pcap {
        Some(path) => Some(Input::open(path).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let log_warning = init_default_logging(cli.log.log_file.as_deref(), cli.log.verbose)?;
    let headless = checked.headless;
    let say = |text: &str| {
        if headless {
            eprintln!("chronik-tui: {text}");
        }
    };
    if let Some(w) = &log_warning {
        say(w);
    }
    if !cli.display.headless && headless && checked.out == Out::Stdout {
        say("stdout is not a terminal; printing exchanges as with --headless");
    }
    if headless && cli.capture.record.is_none() {
        if let Some(input) = input {
            // Printing a whole file as it is read is what `decode` does (in order, nothing
            // dropped however fast the file is read).
            drop(input);
            let args = DecodeArgs {
                file: cli.capture.pcap.clone().unwrap_or_default(),
                json: cli.display.json,
                filter: None,
                count: None,
                fields: Vec::new(),
                time: cli.display.time,
                parquet: None,
                kafka_ports: cli.capture.kafka_ports.clone(),
            };
            let opts = decode_options(args);
            tokio::task::spawn_blocking(move || decode::run(opts)).await??;
            return Ok(ExitCode::SUCCESS);
        }
    }
    // From here on the run ends by these signals (the decode path above keeps their defaults).
    let mut signals = StopSignals::listen().context("listening for SIGINT and SIGTERM")?;
    let store = if cli.store.no_capture {
        Store::off()
    } else {
        Store::new(StoreLimits {
            max_exchanges: cli.store.store_max_exchanges,
            max_bytes: cli.store.store_max_bytes,
        })
    };
    let settings = Settings::new(Knobs {
        placement: cli.placement.placement,
        rules: cli.placement.throttle_rules.clone(),
        throttle_ms: cli.placement.throttle_ms,
        caps: cli
            .placement
            .caps
            .iter()
            .map(|c| (c.api_key, c.max_version))
            .collect(),
        mutations: cli.placement.mutations.clone(),
        faults: cli.placement.faults.clone(),
        stall: StallThresholds {
            close_after_response: std::time::Duration::from_millis(cli.stall.stall_close_after_ms),
            silence: std::time::Duration::from_millis(cli.stall.stall_silence_ms),
            unanswered: std::time::Duration::from_millis(cli.stall.stall_unanswered_ms),
        },
    });
    // Client detection and the stall detector, on the store's feeds (subscribed before the
    // source starts, so it sees every connection). Headless, it runs in the printer's task
    // (see `headless::with_companion`), else in one of its own from now on.
    let (clients, detector) = chronik_tui::diagnose::start(&store, settings.stall_thresholds());
    let detector = if headless {
        Some(detector)
    } else {
        tokio::spawn(detector);
        None
    };
    // The recorder subscribes before the source starts, so it misses nothing (exchanges name
    // their broker side; the listen address is for those that do not).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let recorder = match &cli.capture.record {
        Some(path) => Some(
            chronik_tui::capture::pcap::record::spawn_recorder(
                store.clone(),
                path.clone(),
                checked.listen,
                stop_rx.clone(),
            )
            .with_context(|| format!("--record {}", path.display()))?,
        ),
        None => None,
    };
    let mut source = start_source(&cli, &checked, &store, &settings, input).await?;
    let result = if !headless {
        let (theme, warning) = chronik_tui::tui::theme::resolve(
            cli.display.theme.as_deref(),
            chronik_tui::tui::theme::no_color_requested(),
        );
        if let Some(w) = &warning {
            tracing::warn!("{w}");
        }
        let source_status = source.status();
        let startup = warning
            .or(log_warning)
            .unwrap_or_else(|| format!("{}; ? for help", source.label));
        let result = chronik_tui::tui::run(chronik_tui::tui::AppDeps {
            store: store.clone(),
            settings: settings.clone(),
            clients: Some(clients),
            theme,
            source: source.label.clone(),
            startup_message: Some(startup),
            source_status,
            export_server: source.server,
            steps: None,
        })
        .await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "terminal UI failed");
        }
        result
    } else {
        let out = checked.out;
        tokio::spawn(headless::print_client_states(
            clients.subscribe(),
            cli.display.json,
            out,
        ));
        if source.broker.is_some() || source.proxy.is_some() {
            // Commands on stdin (`placement front`, `rule add …`, `clients`); EOF ends only this.
            let table = clients.clone();
            let control = chronik_tui::control::Control::new(settings.clone())
                .with_clients_hook(Box::new(move || table.render()))
                .with_markers(store.clone(), "stdin");
            tokio::spawn(chronik_tui::control::run_stdin(
                control,
                cli.display.json,
                out,
            ));
        }
        let print = headless::print_live(
            store.clone(),
            store.subscribe(),
            cli.display.json,
            Clock::new(cli.display.time),
            out,
            stop_rx.clone(),
        );
        let mut printer = match detector {
            Some(d) => tokio::spawn(headless::with_companion(print, d)),
            None => tokio::spawn(print),
        };
        match (&source.broker, &source.proxy) {
            (Some(h), _) => say(&format!("broker listening on {}", source.label_addr(h))),
            (_, Some(p)) => say(&format!(
                "proxy listening on {} for {}",
                p.local_addr,
                p.upstream()
            )),
            _ => say(&format!("reading {}", source.label)),
        }
        if cli.store.no_capture {
            say("capture is off (--no-capture): no exchange is kept or printed");
        }
        // A capture file ends once it is read; a broker or a sniff when told to stop.
        let file_read = async {
            match &source.progress {
                Some(p) if source.sniffer.is_none() => p.finished().await,
                _ => std::future::pending().await,
            }
        };
        let printer_ended = tokio::select! {
            _ = signals.recv() => false,
            _ = &mut printer => true,
            _ = file_read => false,
        };
        // The broker's connections finish what they were serving (and capture it); then the
        // printer and the recorder write out what had arrived, and end.
        if let Some(b) = source.broker.take() {
            b.shutdown().await;
        }
        let _ = stop_tx.send(true);
        if !printer_ended {
            let _ = printer.await;
        }
        Ok(())
    };
    if let Some(s) = source.sniffer {
        let _ = tokio::task::spawn_blocking(move || s.stop()).await;
    }
    if let Some(b) = source.broker.take() {
        b.shutdown().await;
    }
    let _ = stop_tx.send(true);
    let mut failed = false;
    if let Some(r) = recorder {
        match r.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("chronik-tui: --record: {e}");
                failed = true;
            }
            Err(e) => {
                eprintln!("chronik-tui: --record: {e}");
                failed = true;
            }
        }
    }
    // A capture that could not be read to its end fails the run, after what it held was shown.
    if let Some(p) = &source.progress {
        for e in p.errors() {
            eprintln!("chronik-tui: {e}");
            failed = true;
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    result?;
    // Exit now: the runtime would otherwise wait for the blocking thread that reads stdin
    // (headless commands), which only ends with a line or end of input.
    std::process::exit(if failed { 1 } else { 0 })
}

impl Source {
    /// The status bar's source text when it changes while running: a file's progress, the
    /// proxy's listeners.
    fn status(&self) -> Option<Arc<dyn Fn() -> String + Send + Sync>> {
        if let Some(p) = self.progress.clone() {
            return Some(Arc::new(move || p.status()));
        }
        let listeners = self.proxy.as_ref()?.listeners_source();
        let label = self.label.clone();
        Some(Arc::new(move || {
            match listeners().len().saturating_sub(1) {
                0 => label.clone(),
                n => format!(
                    "{label} (+{n} broker listener{})",
                    if n == 1 { "" } else { "s" }
                ),
            }
        }))
    }

    /// The broker's address for the start-up line, with a note when it listens beyond
    /// loopback.
    fn label_addr(&self, h: &broker::BrokerHandle) -> String {
        self.label
            .strip_prefix("broker ")
            .map_or_else(|| h.local_addr.to_string(), str::to_string)
    }
}
