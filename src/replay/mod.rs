//! `chronik-tui replay CAPTURE`: a capture's requests sent again, to a fresh embedded broker
//! with the settings given (or to any Kafka broker with `--target`), and each live response
//! compared field by field with the recorded one.
//!
//! The flow, one module per step:
//! - [`load`]: the capture (pcap, pcapng, chronik-tui's JSON lines) read as `decode` reads it,
//!   its exchanges ordered per connection; the topics and SASL/PLAIN credentials it implies;
//! - [`setup`]: those topics created on the broker replayed against;
//! - [`session`]: every connection replayed at once, at the capture's pace, each live response
//!   compared as it comes ([`crate::protocol::diff`]), fields that differ by nature left out
//!   ([`ignore`]), identifiers the live broker handed out carried into later requests
//!   ([`rewrite`]);
//! - [`report`]: a line (or a JSON object) per exchange and a summary.

pub mod ignore;
pub mod load;
pub mod report;
pub mod rewrite;
pub mod save;
pub mod session;
pub mod setup;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use crate::capture::pcap::kafka_stream::StreamOptions;
use crate::capture::{Exchange, Store, StoreLimits};
use crate::cli::{self, PlacementArgs, ReplayArgs, UsageError};
use crate::protocol::diff::Diff;
use crate::protocol::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::settings::{Knobs, Settings, ThrottlePlacement};
use ignore::IgnoreList;
use rewrite::{Id, Identities, Kind};

/// How one exchange came out.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Both brokers answered: the responses field by field.
    Compared(Diff),
    /// Neither answered, alike (how).
    Alike(String),
    /// One answered and the other did not, or not the same way.
    Differs { recorded: String, live: String },
    /// Not compared, and why (the capture has no request, or no answer, to compare).
    Skipped(String),
}

/// One exchange of the capture, replayed.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// Its place among the capture's exchanges (as `decode` lists them).
    pub index: usize,
    /// As the capture has it.
    pub exchange: Arc<Exchange>,
    /// The request as sent (with the live broker's identifiers), if it was.
    pub sent: Option<Vec<u8>>,
    /// The live response, if one came.
    pub live: Option<Vec<u8>>,
    pub outcome: Outcome,
}

/// Where the requests go.
#[derive(Debug, Clone)]
pub enum Against {
    /// A fresh embedded broker, listening here, set up so.
    Embedded {
        listen: std::net::SocketAddr,
        /// Boxed: the knobs hold every rule list.
        knobs: Box<Knobs>,
        sasl_plain: Option<(String, String)>,
        auto_create_topics: bool,
        default_partitions: i32,
    },
    /// A broker of the user's (`HOST:PORT`).
    Target(String),
}

/// What a replay is asked to do, checked.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub file: PathBuf,
    pub stream: StreamOptions,
    pub against: Against,
    pub ignore: IgnoreList,
    /// How much faster than recorded; none: as fast as the responses allow.
    pub speed: Option<f64>,
    pub timeout: Duration,
    pub json: bool,
}

/// The embedded broker's knobs from the placement flags.
fn knobs(p: &PlacementArgs) -> Knobs {
    Knobs {
        placement: p.placement,
        rules: p.throttle_rules.clone(),
        throttle_ms: p.throttle_ms,
        caps: p.caps.iter().map(|c| (c.api_key, c.max_version)).collect(),
        ..Knobs::default()
    }
}

impl ReplayOptions {
    /// Checks the command line: a bad `--target`, `--listen`, `--speed`, an unknown
    /// `--ignore` field, or broker settings given with `--target`, are usage errors.
    pub fn from_args(a: &ReplayArgs) -> Result<ReplayOptions, UsageError> {
        let ignore = IgnoreList::new(!a.no_default_ignore, &a.ignore).map_err(UsageError)?;
        let speed = if a.as_fast_as_possible {
            None
        } else if a.speed.is_finite() && a.speed > 0.0 {
            Some(a.speed)
        } else {
            return Err(UsageError(format!(
                "--speed {}: must be a number above 0",
                a.speed
            )));
        };
        let against = match &a.target {
            Some(t) => {
                let p = &a.placement;
                let settings = [
                    (p.placement != ThrottlePlacement::Spec, "--placement"),
                    (!p.throttle_rules.is_empty(), "--throttle-rule"),
                    (p.throttle_ms != 0, "--throttle-ms"),
                    (!p.caps.is_empty(), "--cap"),
                    (a.sasl_plain.is_some(), "--sasl-plain"),
                    (a.no_auto_create_topics, "--no-auto-create-topics"),
                    (a.default_partitions != 1, "--default-partitions"),
                    (a.listen.is_some(), "--listen"),
                ];
                if let Some((_, flag)) = settings.iter().find(|(given, _)| *given) {
                    return Err(UsageError(format!(
                        "{flag} sets up the embedded broker; it cannot change the --target broker"
                    )));
                }
                Against::Target(cli::host_port("--target", t)?.to_string())
            }
            None => Against::Embedded {
                listen: cli::listen_addr("--listen", a.listen.as_deref().unwrap_or("127.0.0.1:0"))?,
                knobs: Box::new(knobs(&a.placement)),
                sasl_plain: a.sasl_plain.as_deref().map(cli::sasl_plain).transpose()?,
                auto_create_topics: !a.no_auto_create_topics,
                default_partitions: a.default_partitions,
            },
        };
        Ok(ReplayOptions {
            file: a.file.clone(),
            stream: StreamOptions {
                kafka_ports: a.kafka_ports.clone(),
                max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
                ..Default::default()
            },
            against,
            ignore,
            speed,
            timeout: Duration::from_secs(a.timeout.max(1)),
            json: a.json,
        })
    }
}

/// A replay under way: its results come on `results`, one per exchange of the capture, in the
/// order they are settled.
pub struct Started {
    /// The broker replayed against, for people (`the embedded broker 127.0.0.1:40123
    /// (placement spec)`, or `--target`'s address).
    pub against: String,
    /// Exchanges of the capture: how many results will come.
    pub exchanges: usize,
    pub connections: usize,
    pub results: tokio::sync::mpsc::UnboundedReceiver<Replayed>,
    /// What setting up did and found (topics created, SASL credentials taken from the capture).
    pub notes: Vec<String>,
    /// Why reading the capture stopped early, if it did.
    pub capture_errors: Vec<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    broker: Option<crate::broker::BrokerHandle>,
}

impl Started {
    /// Waits for every connection to finish, then stops the embedded broker.
    pub async fn finish(self) {
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(h) = self.broker {
            h.shutdown().await;
        }
    }

    /// Stops the replay where it is (the user quit), then the embedded broker.
    pub async fn abort(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(h) = self.broker {
            h.shutdown().await;
        }
    }
}

/// Reads the capture, starts the broker (unless `--target`), creates the topics the capture
/// implies, and starts every connection. A capture that cannot be read, and a broker that
/// cannot be started or reached, are errors.
pub async fn start(opts: &ReplayOptions) -> anyhow::Result<Started> {
    let (file, stream) = (opts.file.clone(), opts.stream.clone());
    let capture = tokio::task::spawn_blocking(move || load::read(&file, stream))
        .await?
        .map_err(anyhow::Error::msg)?;
    if capture.exchanges.is_empty() {
        // Nothing to compare is not a replay that found no difference.
        let why = capture.errors.last().cloned().unwrap_or_else(|| {
            format!(
                "{}: no Kafka exchanges to replay (are the brokers on another --kafka-port?)",
                opts.file.display()
            )
        });
        anyhow::bail!(why);
    }
    let topics = load::topics(&capture);
    let recorded_sasl = load::sasl_plain(&capture);
    let mut notes = Vec::new();

    let (addr, broker, against, sasl) = match &opts.against {
        Against::Target(t) => (t.clone(), None, t.clone(), recorded_sasl),
        Against::Embedded {
            listen,
            knobs,
            sasl_plain,
            auto_create_topics,
            default_partitions,
        } => {
            let sasl = sasl_plain.clone().or(recorded_sasl.clone());
            if let (None, Some((user, _))) = (sasl_plain, &recorded_sasl) {
                notes.push(format!(
                    "the embedded broker requires SASL/PLAIN as {user}, as the capture authenticated"
                ));
            }
            let config = crate::broker::BrokerConfig {
                listen: *listen,
                sasl_plain: sasl.clone(),
                auto_create_topics: *auto_create_topics,
                default_partitions: *default_partitions,
                ..crate::broker::BrokerConfig::default()
            };
            // The broker's own record of the replay is not read: the replay reads the socket.
            let store = Store::new(StoreLimits {
                max_exchanges: 1,
                max_bytes: 1 << 20,
            });
            let settings = Settings::new((**knobs).clone());
            let h = crate::broker::start(config, store, settings).await?;
            let addr = h.local_addr.to_string();
            let label = format!(
                "the embedded broker {addr} (placement {}{})",
                knobs.placement,
                if knobs.rules.is_empty() && knobs.caps.is_empty() && knobs.throttle_ms == 0 {
                    ""
                } else {
                    ", with rules, caps or throttle"
                }
            );
            (addr, Some(h), label, sasl)
        }
    };

    let prepared = setup::prepare(&addr, &topics, sasl.as_ref())
        .await
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("setting up {against}"))?;
    if !prepared.created.is_empty() {
        let list: Vec<String> = prepared
            .created
            .iter()
            .map(|(t, n)| format!("{t} ({n})"))
            .collect();
        notes.push(format!("created topics {}", list.join(", ")));
    }
    notes.extend(prepared.warnings.iter().cloned());
    let mut identities = Identities::default();
    for (recorded, live) in &prepared.topic_ids {
        identities.learn(
            Kind::TopicId,
            Id::Uuid(recorded.clone()),
            Id::Uuid(live.clone()),
        );
    }

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let t0 = capture
        .conns
        .values()
        .flat_map(|c| {
            c.opened_at
                .into_iter()
                .chain(c.steps.first().map(|i| capture.exchanges[*i].request_at))
        })
        .min()
        .unwrap_or(0);
    let ctx = Arc::new(session::Ctx {
        addr,
        start: tokio::time::Instant::now(),
        t0,
        speed: opts.speed,
        timeout: opts.timeout,
        max_frame: DEFAULT_MAX_FRAME_BYTES,
        exchanges: capture.exchanges.clone(),
        ignore: opts.ignore.clone(),
        identities: Mutex::new(identities),
        results: tx.clone(),
        order: session::SendOrder::new(capture.requests_in_order(), &capture.exchanges),
    });
    // Exchanges without a request to send are settled at once.
    for (index, ex) in capture.exchanges.iter().enumerate() {
        if !ex.request_seen() {
            let _ = tx.send(Replayed {
                index,
                exchange: ex.clone(),
                sent: None,
                live: None,
                outcome: Outcome::Skipped("the capture does not hold its request".into()),
            });
        }
    }
    let tasks = capture
        .conns
        .values()
        .map(|plan| tokio::spawn(session::run(ctx.clone(), plan.clone())))
        .collect();
    Ok(Started {
        against,
        exchanges: capture.exchanges.len(),
        connections: capture.conns.len(),
        results: rx,
        notes,
        capture_errors: capture.errors,
        tasks,
        broker,
    })
}

/// `--save-scenario FILE`: the capture as a scenario (nothing is replayed).
fn save_scenario(args: &ReplayArgs, opts: &ReplayOptions, out: &Path) -> anyhow::Result<ExitCode> {
    let capture = load::read(&opts.file, opts.stream.clone()).map_err(anyhow::Error::msg)?;
    let quoted = |s: String| toml::Value::String(s).to_string();
    let list = |items: Vec<String>| {
        format!(
            "[{}]",
            items.into_iter().map(quoted).collect::<Vec<_>>().join(", ")
        )
    };
    let p = &args.placement;
    let mut setup = Vec::new();
    if p.placement != crate::settings::ThrottlePlacement::Spec {
        setup.push(("placement".to_string(), quoted(p.placement.to_string())));
    }
    if p.throttle_ms != 0 {
        setup.push(("throttle_ms".to_string(), p.throttle_ms.to_string()));
    }
    for (key, items) in [
        (
            "rules",
            p.throttle_rules
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>(),
        ),
        ("caps", p.caps.iter().map(|c| c.to_string()).collect()),
        (
            "mutations",
            p.mutations.iter().map(|m| m.to_string()).collect(),
        ),
        ("faults", p.faults.iter().map(|f| f.to_string()).collect()),
    ] {
        if !items.is_empty() {
            setup.push((key.to_string(), list(items)));
        }
    }
    let text = save::scenario_text(&opts.file, &capture, &setup);
    let steps = text.matches("\n[[step]]").count();
    std::fs::write(out, &text).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    // What was written must read back as a scenario.
    crate::scenario::Scenario::parse(out, &text).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{}: {steps} steps from {}",
        out.display(),
        opts.file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `chronik-tui replay`: the terminal UI when standard output is a terminal (unless
/// `--headless` or `--json`), else a line per exchange; then the summary. Exit 0 when every
/// exchange came out the same (outside the ignore list), 1 when some did not or the capture was
/// cut short (after what it held was replayed).
pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let opts = ReplayOptions::from_args(&args)?;
    if let Some(out) = &args.save_scenario {
        return save_scenario(&args, &opts, out);
    }
    let tui = !args.headless && !opts.json && std::io::stdout().is_terminal();
    let theme = tui.then(|| {
        crate::tui::theme::resolve(
            args.theme.as_deref(),
            crate::tui::theme::no_color_requested(),
        )
    });
    let mut started = start(&opts).await?;
    let capture_errors = std::mem::take(&mut started.capture_errors);
    let mut notes = std::mem::take(&mut started.notes);
    let (against, connections) = (started.against.clone(), started.connections);
    let (_, closed) = tokio::sync::mpsc::unbounded_channel();
    let mut results = std::mem::replace(&mut started.results, closed);
    let tally = match theme {
        Some((theme, warning)) => {
            notes.extend(warning);
            let view = crate::tui::replay::ReplayView::new(
                against.clone(),
                started.exchanges,
                notes,
                theme,
            );
            let view = crate::tui::replay::run(view, results).await?;
            if view.finished() {
                started.finish().await;
            } else {
                started.abort().await;
            }
            view.tally().clone()
        }
        None => {
            for n in &notes {
                eprintln!("chronik-tui replay: {n}");
            }
            let mut printer = report::Printer::new(std::io::stdout(), opts.json);
            while let Some(r) = results.recv().await {
                printer.push(r)?;
            }
            started.finish().await;
            printer.tally
        }
    };
    // The summary stays on the terminal once the UI is gone.
    println!(
        "{}",
        report::summary(&tally, &against, connections, opts.json)
    );
    for e in &capture_errors {
        eprintln!("chronik-tui: {e}");
    }
    Ok(if tally.differ > 0 || !capture_errors.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
