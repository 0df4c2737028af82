//! The terminal UI at scale: frame time and filter time with many exchanges held, against the
//! same with 5, drawn into ratatui's `TestBackend` (120×36).
//!
//! `cargo bench --bench tui_scale` fills a store with `BENCH_EXCHANGES` (default 1 000 000)
//! exchanges made from a few real frames encoded by kafka-protocol (small Produce v7 with
//! acks=1 and Metadata v1, with their responses), spread over 8 connections with increasing
//! correlation ids, builds the app as the terminal UI does (with the stall detector over the
//! store) and ticks it until every exchange is a row (the longest tick is printed). Then it
//! times, median of `BENCH_FRAMES` (default 200):
//! - drawing a frame;
//! - a tick (sampling the store) and a frame;
//! - a key (PageUp, Up) and a frame;
//!
//! and the wall time from Enter to the result of the filters `corr == 5` (no dissection) and
//! `produce.request.acks == 1` (dissects every exchange), Enter's own time, a key and a frame
//! while a filter runs, and the resident memory per exchange against its frame bytes and the
//! peak. The same with 5 exchanges gives the ratios. Not a test: figures only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use chronik_tui::capture::{ClientId, Endpoints, Exchange, Status, Store, StoreLimits};
use chronik_tui::diagnose::DiagnoseHandle;
use chronik_tui::settings::{Knobs, Settings};
use chronik_tui::tui::theme::Theme;
use chronik_tui::tui::{App, AppDeps};

#[path = "../tests/it/common/frame.rs"]
mod frame;
#[path = "common/knobs.rs"]
mod knobs;
#[path = "common/proc_status.rs"]
mod proc_status;

const CONNECTIONS: u64 = 8;
const WIDTH: u16 = 120;
const HEIGHT: u16 = 36;

/// The frames the exchanges are copies of: (api key, version, request, response).
fn templates() -> Vec<(ApiKey, i16, Vec<u8>, Vec<u8>)> {
    let produce = frame::produce_req(
        "bench",
        0,
        1,
        frame::records(&[&b"value 0"[..], b"value 1"], 2, None),
    );
    let produce_resp = ProduceResponse::default().with_responses(vec![
        produce_response::TopicProduceResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("bench")))
            .with_partition_responses(vec![produce_response::PartitionProduceResponse::default()
                .with_index(0)
                .with_base_offset(42)]),
    ]);
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_static_str("bench"))))]));
    let metadata_resp = MetadataResponse::default()
        .with_brokers(vec![metadata_response::MetadataResponseBroker::default()
            .with_node_id(BrokerId(1))
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(9092)])
        .with_controller_id(BrokerId(1))
        .with_topics(vec![metadata_response::MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("bench"))))
            .with_partitions(vec![
                metadata_response::MetadataResponsePartition::default()
                    .with_partition_index(0)
                    .with_leader_id(BrokerId(1))
                    .with_replica_nodes(vec![BrokerId(1)])
                    .with_isr_nodes(vec![BrokerId(1)]),
            ])]);
    vec![
        (
            ApiKey::Produce,
            7,
            frame::request_frame(ApiKey::Produce, 7, 0, "bench", &produce),
            frame::response_frame(ApiKey::Produce, 7, 0, &produce_resp),
        ),
        (
            ApiKey::Metadata,
            1,
            frame::request_frame(ApiKey::Metadata, 1, 0, "bench", &metadata),
            frame::response_frame(ApiKey::Metadata, 1, 0, &metadata_resp),
        ),
    ]
}

/// Pushes `n` exchanges to `store`: one in 50 a Metadata, the others Produce requests, each
/// frame's correlation id patched in. As a source does, each connection's addresses and client
/// id are made once and shared by its exchanges. Returns the frame bytes pushed.
fn fill(store: &Store, n: usize) -> usize {
    let t = templates();
    let base = 1_796_032_800_000_000i64;
    let server = Some("127.0.0.1:9092".parse().unwrap());
    let conns: Vec<(Arc<Endpoints>, ClientId)> = (1..=CONNECTIONS)
        .map(|conn| {
            let peer = format!("127.0.0.1:{}", 40000 + conn).parse().unwrap();
            (
                Endpoints::shared(peer, server),
                Arc::new("bench".to_string()),
            )
        })
        .collect();
    let mut bytes = 0;
    for i in 0..n {
        let conn = 1 + (i as u64 % CONNECTIONS);
        let corr = (i as u64 / CONNECTIONS) as i32 + 1;
        let (key, version, req, resp) = &t[usize::from(i % 50 == 0)];
        let mut request = req.clone();
        request[8..12].copy_from_slice(&corr.to_be_bytes());
        let mut response = resp.clone();
        response[4..8].copy_from_slice(&corr.to_be_bytes());
        bytes += request.len() + response.len();
        let at = base + i as i64 * 20;
        let (endpoints, client_id) = &conns[(conn - 1) as usize];
        let mut ex = Exchange::new(conn, endpoints.clone(), at, Status::Answered)
            .with_client_id(Some(client_id.clone()))
            .with_frames(request, Some(response))
            .with_response_at(Some(at + 350));
        ex.api_key = *key as i16;
        ex.api_version = *version;
        ex.correlation_id = corr;
        store.push(ex);
    }
    bytes
}

/// The app as the terminal UI builds it: with the stall detector over the store (started
/// before the store is filled, as a source would be; call within a Tokio runtime).
fn app_over(store: &Arc<Store>, settings: Arc<Settings>, detector: DiagnoseHandle) -> App {
    let mut app = App::new(AppDeps {
        store: store.clone(),
        settings,
        clients: Some(detector),
        theme: Theme::default_theme(),
        source: "bench".into(),
        startup_message: None,
        source_status: None,
        export_server: "127.0.0.1:9092".parse().unwrap(),
        steps: None,
    });
    app.clock = || 1_796_032_900_000_000;
    app
}

fn key(app: &mut App, code: KeyCode) {
    app.handle_event(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Figures for one size.
struct Figures {
    n: usize,
    fill: Duration,
    ingest: Duration,
    ingest_tick_max: Duration,
    draw: Duration,
    tick_draw: Duration,
    page_draw: Duration,
    up_draw: Duration,
    /// (filter, Enter handled, to the result, rows, key + frame meanwhile).
    filters: Vec<(String, Duration, Duration, usize, Duration)>,
    rss_per_exchange: f64,
    frame_bytes: f64,
}

/// Whether a filter is still being applied (the status bar says how far it got).
fn filtering(app: &App) -> bool {
    app.list.refilter_progress().is_some()
}

fn run(n: usize, frames: usize) -> Figures {
    let rss_before = proc_status::rss_mib("self");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = runtime.enter();
    let store = Store::new(StoreLimits {
        max_exchanges: n.max(1),
        max_bytes: usize::MAX / 2,
    });
    let settings = Settings::new(Knobs::default());
    let detector = chronik_tui::diagnose::spawn(&store, settings.stall_thresholds());
    let t = Instant::now();
    let bytes = fill(&store, n);
    let fill = t.elapsed();
    let mut app = app_over(&store, settings, detector);
    let t = Instant::now();
    let mut ticks = Vec::new();
    while app.list.counts().0 < n {
        let k = Instant::now();
        app.tick();
        ticks.push(k.elapsed());
    }
    let ingest = t.elapsed();
    let ingest_tick_max = ticks.iter().max().copied().unwrap_or_default();
    let rss_after = proc_status::rss_mib("self");
    let mut term = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).unwrap();
    let mut draw = |app: &mut App| {
        let t = Instant::now();
        term.draw(|f| app.draw(f)).unwrap();
        t.elapsed()
    };
    for _ in 0..5 {
        draw(&mut app);
    }
    let d: Vec<Duration> = (0..frames).map(|_| draw(&mut app)).collect();
    let draw_median = median(d);
    let d: Vec<Duration> = (0..frames)
        .map(|_| {
            let t = Instant::now();
            app.tick();
            t.elapsed() + draw(&mut app)
        })
        .collect();
    let tick_draw = median(d);
    let d: Vec<Duration> = (0..frames)
        .map(|_| {
            let t = Instant::now();
            key(&mut app, KeyCode::PageUp);
            t.elapsed() + draw(&mut app)
        })
        .collect();
    let page_draw = median(d);
    let d: Vec<Duration> = (0..frames)
        .map(|_| {
            let t = Instant::now();
            key(&mut app, KeyCode::Up);
            t.elapsed() + draw(&mut app)
        })
        .collect();
    let up_draw = median(d);
    key(&mut app, KeyCode::End);
    let mut filters = Vec::new();
    for text in ["corr == 5", "produce.request.acks == 1"] {
        let t = Instant::now();
        key(&mut app, KeyCode::Char('/'));
        for c in text.chars() {
            key(&mut app, KeyCode::Char(c));
        }
        let e = Instant::now();
        key(&mut app, KeyCode::Enter);
        let enter = e.elapsed();
        // Until the result is in: frames and keys go on meanwhile (none when it blocks).
        let mut while_running = Vec::new();
        while filtering(&app) {
            let k = Instant::now();
            app.tick();
            key(&mut app, KeyCode::Up);
            while_running.push(k.elapsed() + draw(&mut app));
            std::thread::sleep(Duration::from_millis(5));
        }
        let took = t.elapsed();
        let shown = app.list.counts().1;
        let busy = if while_running.is_empty() {
            Duration::ZERO
        } else {
            median(while_running)
        };
        filters.push((text.to_string(), enter, took, shown, busy));
        // Clear the filter (Esc on the list shows every exchange again).
        key(&mut app, KeyCode::Esc);
        key(&mut app, KeyCode::End);
    }
    drop(app);
    Figures {
        n,
        fill,
        ingest,
        ingest_tick_max,
        draw: draw_median,
        tick_draw,
        page_draw,
        up_draw,
        filters,
        rss_per_exchange: (rss_after - rss_before) * 1024.0 * 1024.0 / n as f64,
        frame_bytes: bytes as f64 / n as f64,
    }
}

fn print(f: &Figures) {
    println!("-- {} exchanges --", f.n);
    println!(
        "  fill store {:.2} s, ticks until every row is in {:.2} s (longest tick {})",
        f.fill.as_secs_f64(),
        f.ingest.as_secs_f64(),
        ms(f.ingest_tick_max)
    );
    println!("  frame                      {}", ms(f.draw));
    println!("  tick + frame               {}", ms(f.tick_draw));
    println!("  PageUp + frame             {}", ms(f.page_draw));
    println!("  Up + frame                 {}", ms(f.up_draw));
    for (text, enter, took, shown, busy) in &f.filters {
        println!(
            "  filter {text:<26} Enter {}, {:.3} s to {shown} rows; key + frame meanwhile {}",
            ms(*enter),
            took.as_secs_f64(),
            if busy.is_zero() {
                "- (blocked)".to_string()
            } else {
                ms(*busy)
            }
        );
    }
    if f.n < 10_000 {
        return;
    }
    println!(
        "  memory per exchange        {:.0} B (frames {:.0} B, so {:.0} B beyond them)",
        f.rss_per_exchange,
        f.frame_bytes,
        f.rss_per_exchange - f.frame_bytes
    );
}

fn main() {
    let n = knobs::env_or::<usize>("BENCH_EXCHANGES", 1_000_000);
    let frames = knobs::env_or::<usize>("BENCH_FRAMES", 200);
    println!("tui_scale: TestBackend {WIDTH}x{HEIGHT}, {frames} frames per median");
    let small = run(5, frames);
    print(&small);
    let large = run(n, frames);
    print(&large);
    println!(
        "ratio {}/5: frame {:.1}x, tick + frame {:.1}x, PageUp + frame {:.1}x",
        n,
        large.draw.as_secs_f64() / small.draw.as_secs_f64(),
        large.tick_draw.as_secs_f64() / small.tick_draw.as_secs_f64(),
        large.page_draw.as_secs_f64() / small.page_draw.as_secs_f64(),
    );
    println!(
        "an Exchange is {} B, besides its frames and the blocks it points to",
        std::mem::size_of::<Exchange>()
    );
    println!("peak RSS {:.0} MiB", proc_status::peak_rss_mib("self"));
}
