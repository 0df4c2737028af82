//! The terminal UI drawn into ratatui's `TestBackend`: snapshots of each view at fixed sizes
//! (80×24 included), the tree ↔ hex link in both directions, the display filter and the
//! settings changes made through the UI.
//!
//! The exchanges are real: requests encoded by kafka-protocol, sent over a socket to the
//! embedded broker, its responses as it wrote them. Only the clock and the peer ports are
//! normalised afterwards, so the snapshots do not change from run to run.
//! Snapshots live in tests/snapshots/; `UPDATE_SNAPSHOTS=1 cargo test --test it tui_render::`
//! rewrites them (then read the diff).

use crate::common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{Record, TimestampType};
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use chronik_tui::broker::{self, BrokerConfig};
use chronik_tui::capture::{Endpoints, Exchange, Store, StoreLimits};
use chronik_tui::settings::{Knobs, Settings};
use chronik_tui::tui::app::{Focus, View};
use chronik_tui::tui::theme::Theme;
use chronik_tui::tui::{App, AppDeps};

/// 2026-11-30 10:00:00 UTC, the normalised clock's start.
const BASE: i64 = 1_796_032_800_000_000;

fn clock() -> i64 {
    BASE + 5_000_000
}

struct Conn {
    s: TcpStream,
    corr: i32,
}

impl Conn {
    async fn open(addr: std::net::SocketAddr) -> Conn {
        Conn {
            s: TcpStream::connect(addr).await.unwrap(),
            corr: 0,
        }
    }

    async fn call<Req: Encodable>(&mut self, key: ApiKey, version: i16, req: &Req) {
        self.corr += 1;
        let frame = common::request_frame(key, version, self.corr, "render-test", req);
        self.s.write_all(&frame).await.unwrap();
        let mut len = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), self.s.read_exact(&mut len))
            .await
            .expect("a response in time")
            .unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut body).await.unwrap();
    }
}

fn produce(topic: &str, text: &str) -> ProduceRequest {
    let records: Vec<Record> = (0..2)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: -1,
            timestamp: 1_796_032_800_123 + i,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("{text} {i}"))),
            headers: IndexMap::new(),
        })
        .collect();
    common::frame::produce_req(topic, 0, 1, common::frame::encode_batch(&records, 2))
}

fn metadata(topic: &str, auto_create: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]))
        .with_allow_auto_topic_creation(auto_create)
}

/// A short real session against the embedded broker, with a normalised clock and ports.
async fn session() -> Vec<Exchange> {
    let store = Store::new(StoreLimits::default());
    let settings = Settings::new(Knobs::default());
    let config = BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        auto_create_topics: true,
        ..BrokerConfig::default()
    };
    let h = broker::start(config, store.clone(), settings)
        .await
        .unwrap();
    let mut c = Conn::open(h.local_addr).await;
    c.call(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("render-test"))
            .with_client_software_version(StrBytes::from_static_str("1.0")),
    )
    .await;
    c.call(ApiKey::Metadata, 9, &metadata("orders", true)).await;
    c.call(ApiKey::Produce, 7, &produce("orders", "hello"))
        .await;
    c.call(ApiKey::Produce, 9, &produce("orders", "world"))
        .await;
    c.call(ApiKey::Metadata, 9, &metadata("missing", false))
        .await;
    // A second connection sends garbage: a malformed exchange, that connection closed.
    let mut bad = TcpStream::connect(h.local_addr).await.unwrap();
    bad.write_all(&[0, 0, 0, 6, 0, 0, 0, 9, 0xff, 0xff])
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), bad.read_to_end(&mut sink)).await;
    for _ in 0..100 {
        if store.snapshot().len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut out: Vec<Exchange> = store.snapshot().iter().map(|e| (**e).clone()).collect();
    assert_eq!(out.len(), 6, "{out:#?}");
    for (i, ex) in out.iter_mut().enumerate() {
        ex.request_at = BASE + i as i64 * 1000;
        if ex.response_at().is_some() {
            ex.set_response_at(Some(ex.request_at + 250 + 50 * i as i64));
        }
        ex.set_endpoints(Endpoints::shared(
            format!("127.0.0.1:{}", 50000 + ex.conn).parse().unwrap(),
            ex.server(),
        ));
    }
    out
}

fn app_over(exchanges: &[Exchange], with_detector: bool) -> (App, Arc<Store>) {
    let store = Store::new(StoreLimits::default());
    let settings = Settings::new(Knobs::default());
    let clients =
        with_detector.then(|| chronik_tui::diagnose::spawn(&store, settings.stall_thresholds()));
    for ex in exchanges {
        store.push(ex.clone());
    }
    (app_with(&store, settings, clients), store)
}

/// The UI over a store, ticked once.
fn app_with(
    store: &Arc<Store>,
    settings: Arc<Settings>,
    clients: Option<chronik_tui::diagnose::DiagnoseHandle>,
) -> App {
    let mut app = App::new(AppDeps {
        store: store.clone(),
        settings,
        clients,
        theme: Theme::default_theme(),
        source: "broker 127.0.0.1:9092".into(),
        startup_message: None,
        source_status: None,
        export_server: "127.0.0.1:9092".parse().unwrap(),
        steps: None,
    });
    app.clock = clock;
    app.tick();
    app
}

fn key(app: &mut App, code: KeyCode) {
    app.handle_event(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn keys(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

fn render(app: &mut App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| app.draw(f)).unwrap();
    t
}

fn text(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    let mut s = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

fn snapshot(name: &str, got: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run UPDATE_SNAPSHOTS=1 cargo test --test it tui_render:: and review it\n{got}",
            path.display()
        )
    });
    if want != got {
        let mut diff = String::new();
        for (i, (a, b)) in want.lines().zip(got.lines()).enumerate() {
            if a != b {
                diff.push_str(&format!("line {}:\n  want |{a}|\n  got  |{b}|\n", i + 1));
            }
        }
        panic!(
            "{name} differs from {} (UPDATE_SNAPSHOTS=1 rewrites it):\n{diff}\nwhole screen:\n{got}",
            path.display()
        );
    }
}

/// (column, row) of cells drawn with this background.
fn cells_with_bg(t: &Terminal<TestBackend>, bg: Color) -> Vec<(u16, u16, String)> {
    let buf = t.backend().buffer();
    let mut v = Vec::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            let c = &buf[(x, y)];
            if c.bg == bg {
                v.push((x, y, c.symbol().to_string()));
            }
        }
    }
    v
}

/// The hex digits highlighted in the hex pane (ASCII column excluded): pairs of cells.
fn highlighted_hex(t: &Terminal<TestBackend>, hex_x: u16) -> Vec<String> {
    let hl = Theme::default_theme().hex_highlight.bg.unwrap();
    let cells = cells_with_bg(t, hl);
    let mut bytes = Vec::new();
    let mut cur = String::new();
    let mut last: Option<(u16, u16)> = None;
    for (x, y, s) in cells.into_iter().filter(|(x, _, _)| *x > hex_x) {
        let adjacent = last.is_some_and(|(lx, ly)| ly == y && lx + 1 == x);
        if !adjacent && !cur.is_empty() {
            bytes.push(std::mem::take(&mut cur));
        }
        cur.push_str(&s);
        last = Some((x, y));
    }
    if !cur.is_empty() {
        bytes.push(cur);
    }
    // Hex pairs only (the ASCII column's cells are single characters in a run of their own).
    bytes
        .into_iter()
        .filter(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()))
        .collect()
}

#[tokio::test]
async fn main_screen_snapshots_at_80x24_and_120x36() {
    let exchanges = session().await;
    let (mut app, _store) = app_over(&exchanges, false);
    // Select the Produce v9 row, open the tree, jump to throttle_time_ms.
    key(&mut app, KeyCode::Home);
    for _ in 0..3 {
        key(&mut app, KeyCode::Char('j'));
    }
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.focus, Focus::Tree);
    key(&mut app, KeyCode::Char('t'));
    let t = render(&mut app, 80, 24);
    snapshot("main_80x24", &text(&t));
    let t = render(&mut app, 120, 36);
    snapshot("main_120x36", &text(&t));
}

#[tokio::test]
async fn tree_and_hex_select_each_other() {
    let exchanges = session().await;
    let produce_v9 = exchanges
        .iter()
        .find(|e| e.api_key == 0 && e.api_version == 9)
        .unwrap()
        .clone();
    let resp = produce_v9.response().map(<[u8]>::to_vec).unwrap();
    let (mut app, _store) = app_over(&exchanges, false);
    key(&mut app, KeyCode::Home);
    for _ in 0..3 {
        key(&mut app, KeyCode::Char('j'));
    }
    assert_eq!(app.list.selected_exchange().unwrap().api_version, 9);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('t'));
    // Tree -> hex: the field is selected and its 4 bytes are the ones highlighted. In a
    // flexible ProduceResponse (v9) the spec puts throttle_time_ms right before the final
    // tagged-field byte.
    let (_, field) = app.tree.selected_field().unwrap();
    assert_eq!(field.name(), "produce.response.throttle_time_ms");
    assert_eq!(field.offset as usize, resp.len() - 5);
    assert_eq!(app.hex.cursor, resp.len() - 5);
    let t = render(&mut app, 120, 36);
    let hex_x = app.hex.area.x;
    assert_eq!(highlighted_hex(&t, hex_x), vec!["00", "00", "00", "00"]);
    // Hex -> tree: move the cursor left onto the byte before it, the tagged-field count that
    // ends the responses array's element, and the tree follows.
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.focus, Focus::Hex);
    key(&mut app, KeyCode::Char('h'));
    let (_, field) = app.tree.selected_field().unwrap();
    assert_eq!(field.name(), "kafka.tagged_fields.count");
    assert_eq!(field.offset as usize, resp.len() - 6);
    // Back to the start of the frame: the length prefix.
    key(&mut app, KeyCode::Char('g'));
    key(&mut app, KeyCode::Char('0'));
    let (_, field) = app.tree.selected_field().unwrap();
    assert_eq!(field.name(), "kafka.length");
    // r switches to the request frame.
    key(&mut app, KeyCode::Char('r'));
    assert_eq!(
        app.hex.side,
        Some(chronik_tui::tui::components::field_tree::Side::Request)
    );
    // A mouse click on the hex pane's byte at offset 4 (api_key) selects it.
    let t = render(&mut app, 120, 36);
    drop(t);
    let area = app.hex.area;
    // Row 0 starts after the border and the 4-digit offset plus two spaces; byte 4 is the fifth.
    let col = area.x + 1 + 4 + 2 + 4 * 3;
    app.handle_event(Event::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: col,
        row: area.y + 1,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(app.hex.cursor, 4);
    let (_, field) = app.tree.selected_field().unwrap();
    assert_eq!(field.name(), "kafka.api_key");
}

#[tokio::test]
async fn malformed_frame_shows_the_failing_offset() {
    let exchanges = session().await;
    let (mut app, _store) = app_over(&exchanges, false);
    key(&mut app, KeyCode::End);
    let ex = app.list.selected_exchange().unwrap().clone();
    assert!(matches!(
        ex.status,
        chronik_tui::capture::Status::Malformed { .. }
    ));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('G'));
    let t = render(&mut app, 80, 24);
    let screen = text(&t);
    snapshot("malformed_80x24", &screen);
    assert!(screen.contains("MALFORMED"), "{screen}");
    let err = Theme::default_theme().hex_error.bg.unwrap();
    assert!(
        !cells_with_bg(&t, err).is_empty(),
        "the failing byte is marked in the hex view"
    );
}

#[tokio::test]
async fn filter_by_registry_names_and_a_clear_error() {
    let exchanges = session().await;
    let (mut app, _store) = app_over(&exchanges, false);
    key(&mut app, KeyCode::Char('/'));
    keys(
        &mut app,
        "api == Produce && produce.response.throttle_time_ms == 0",
    );
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.list.counts(), (6, 2));
    key(&mut app, KeyCode::Char('/'));
    // The prompt starts with the filter in force; replace it.
    app.handle_event(Event::Key(KeyEvent::new(
        KeyCode::Char('u'),
        KeyModifiers::CONTROL,
    )));
    keys(&mut app, "error != 0");
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        app.list.counts().1,
        1,
        "only the Metadata for a missing topic"
    );
    assert_eq!(app.list.selected_exchange().unwrap().api_key, 3);
    // A bad expression: the prompt stays open with the error and its column.
    key(&mut app, KeyCode::Char('/'));
    app.handle_event(Event::Key(KeyEvent::new(
        KeyCode::Char('u'),
        KeyModifiers::CONTROL,
    )));
    keys(&mut app, "produce.response.throtle_time_ms > 0");
    key(&mut app, KeyCode::Enter);
    let msg = app.prompt_error().unwrap().to_string();
    assert!(
        msg.contains("column") && msg.contains("throttle_time_ms"),
        "{msg}"
    );
    assert_eq!(app.list.counts().1, 1, "the previous filter stays");
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.list.counts().1, 6);
    // Following one connection.
    key(&mut app, KeyCode::Home);
    key(&mut app, KeyCode::Char('f'));
    assert_eq!(app.list.counts().1, 5);
}

/// A filter that does not parse, entered with Enter: its error shows at once on the bottom line
/// beside the text, which stays in the prompt to be fixed; fixed, it applies and the prompt closes.
#[tokio::test]
async fn a_bad_filter_shows_its_error_beside_the_text_it_keeps() {
    let exchanges = session().await;
    let (mut app, _store) = app_over(&exchanges, false);
    key(&mut app, KeyCode::Char('/'));
    keys(&mut app, "api == Produse");
    key(&mut app, KeyCode::Enter);
    let why = "at column 8: unknown API `Produse`; did you mean `Produce`?";
    assert_eq!(app.prompt_error(), Some(why));
    assert_eq!(app.list.counts(), (6, 6), "no filter in force");
    let t = render(&mut app, 120, 36);
    let screen = text(&t);
    snapshot("filter_error_120x36", &screen);
    let bottom = |screen: &str| screen.lines().last().unwrap_or("").to_string();
    assert_eq!(bottom(&screen), format!("filter> api == Produse  ✗ {why}"));
    // The error is drawn in the theme's error style.
    let buf = t.backend().buffer();
    let x = "filter> api == Produse  ✗ ".chars().count() as u16;
    assert_eq!(buf[(x, 35)].fg, Theme::default_theme().error.fg.unwrap());
    // On 80 columns the error is cut to fit beside the whole text.
    let narrow = bottom(&text(&render(&mut app, 80, 24)));
    assert_eq!(narrow.chars().count(), 80, "{narrow}");
    assert!(
        narrow.starts_with("filter> api == Produse  ✗ at column 8: unknown API `Produse`;"),
        "{narrow}"
    );
    assert!(narrow.ends_with('…'), "{narrow}");
    // Still editing: the cursor is after the text, and keys change it.
    let t = render(&mut app, 120, 36);
    assert_eq!(t.backend().cursor_position().x, 22);
    key(&mut app, KeyCode::Backspace);
    key(&mut app, KeyCode::Backspace);
    keys(&mut app, "ce");
    assert_eq!(
        bottom(&text(&render(&mut app, 120, 36))),
        format!("filter> api == Produce  ✗ {why}"),
        "the error stays until the text is entered again"
    );
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.prompt_error(), None);
    assert_eq!(app.list.counts(), (6, 2));
    assert_eq!(
        bottom(&text(&render(&mut app, 120, 36))),
        "filter api == Produce: 2 rows"
    );
    // A long text and a long error on a narrow line: each gets half, the text scrolled to keep
    // the cursor in view, the error cut.
    key(&mut app, KeyCode::Char('/'));
    keys(&mut app, " && produce.response.throtle_time_ms > 0");
    key(&mut app, KeyCode::Enter);
    let why = app.prompt_error().unwrap().to_string();
    let narrow = bottom(&text(&render(&mut app, 80, 24)));
    assert_eq!(narrow.chars().count(), 80, "{narrow}");
    let (prompt, shown) = narrow.split_at(narrow.find(" ✗ ").unwrap());
    assert_eq!(prompt.chars().count(), 40, "{narrow}");
    assert!(prompt.ends_with("throtle_time_ms > 0 "), "{narrow}");
    let shown = shown.trim_start_matches(" ✗ ");
    assert!(shown.ends_with('…'), "{narrow}");
    assert!(why.starts_with(shown.trim_end_matches('…')), "{narrow}");
    // Esc leaves the prompt, the error with it; the filter in force stays.
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.prompt_error(), None);
    assert_eq!(app.list.counts(), (6, 2));
    let screen = text(&render(&mut app, 80, 24));
    assert!(!screen.contains('✗'), "{screen}");
}

/// A response whose request is not in the capture (the packet that carried it left out of a
/// capture of the embedded broker): the list's api column says `?` and its summary says so,
/// the tree has no request to decode and says why.
#[tokio::test]
async fn a_response_without_its_request_in_the_list_and_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lost.pcap");
    let dropped = common::capture::without_a_request(&out, |e| e.api_key == 0);
    let exchanges: Vec<Exchange> = common::capture::decode(&out, common::capture::spec_capture().1)
        .iter()
        .map(|e| (**e).clone())
        .collect();
    let (mut app, _store) = app_over(&exchanges, false);
    key(&mut app, KeyCode::End);
    let ex = app.list.selected_exchange().unwrap().clone();
    assert_eq!(ex.response(), dropped.response());
    key(&mut app, KeyCode::Enter);
    let screen = text(&render(&mut app, 120, 36));
    let row = screen.lines().find(|l| l.starts_with("│▶")).unwrap();
    let cells = format!(
        "{:<12} {:<15} {:<6} {:<8} ⚑ request not in the capture ",
        "-", "?", dropped.correlation_id, "-"
    );
    assert!(row.contains(&cells), "{cells:?} in\n{screen}");
    // The tree starts at the response, the only frame there is.
    let len = dropped.response().map_or(0, <[u8]>::len);
    for shown in [
        "┃   Request: not in the capture ".to_string(),
        format!("┃▶▾ Response: ?, {len} bytes  @0+{len} "),
        format!("Hex: response frame, {len} bytes, cursor @0"),
    ] {
        assert!(screen.contains(&shown), "{shown:?} in\n{screen}");
    }
}

#[tokio::test]
async fn placement_and_settings_changes_are_markers_and_show_in_the_status_bar() {
    let exchanges = session().await;
    let (mut app, store) = app_over(&exchanges, false);
    key(&mut app, KeyCode::Char('p'));
    key(&mut app, KeyCode::Char(':'));
    keys(&mut app, "rule add software=kafka-python*:omit");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('3'));
    assert_eq!(app.view, View::Settings);
    // Down to the throttle value, Enter, type 7.
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Enter);
    app.handle_event(Event::Key(KeyEvent::new(
        KeyCode::Char('u'),
        KeyModifiers::CONTROL,
    )));
    keys(&mut app, "7");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('c'));
    app.handle_event(Event::Key(KeyEvent::new(
        KeyCode::Char('u'),
        KeyModifiers::CONTROL,
    )));
    keys(&mut app, "produce=8");
    key(&mut app, KeyCode::Enter);
    // A mutation and a fault, from their own keys.
    for (k, rule) in [
        (
            'm',
            "api=produce,versions=1-8:omit produce.response.throttle_time_ms",
        ),
        (
            'f',
            "api=find_coordinator:error COORDINATOR_NOT_AVAILABLE first 2",
        ),
    ] {
        key(&mut app, KeyCode::Char(k));
        app.handle_event(Event::Key(KeyEvent::new(
            KeyCode::Char('u'),
            KeyModifiers::CONTROL,
        )));
        keys(&mut app, rule);
        key(&mut app, KeyCode::Enter);
    }
    let markers = store.markers_since(0);
    let texts: Vec<&str> = markers.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        vec![
            "[tui] placement: front (was spec)",
            "[tui] rule 1 added: software=kafka-python*:omit",
            "[tui] throttle: 7 ms (was 0 ms)",
            "[tui] cap produce=8 (was uncapped; applies to connections whose ApiVersions comes later)",
            "[tui] mutation 1 added: api=produce,versions=1-8:omit produce.response.throttle_time_ms",
            "[tui] fault 1 added: api=find_coordinator:error COORDINATOR_NOT_AVAILABLE first 2",
        ]
    );
    app.tick();
    let t = render(&mut app, 80, 24);
    snapshot("settings_80x24", &text(&t));
    // The list scrolls: at its last item, the end of the view shows.
    for _ in 0..20 {
        key(&mut app, KeyCode::Char('j'));
    }
    let screen = text(&render(&mut app, 80, 24));
    for shown in ["+ add a fault", "Stall detector thresholds"] {
        assert!(screen.contains(shown), "{shown:?} in\n{screen}");
    }
    assert!(
        !screen.contains("placement of throttle_time_ms"),
        "{screen}"
    );
    key(&mut app, KeyCode::Char('1'));
    let t = render(&mut app, 120, 36);
    let screen = text(&t);
    assert!(
        screen.contains("placement=front rules=1 throttle=7ms caps=produce=8 mutations=1 faults=1"),
        "{screen}"
    );
    assert!(
        screen.contains("[tui] placement: front (was spec)"),
        "marker row:\n{screen}"
    );
}

/// Control commands typed at the `:` prompt are read in any case, the two the UI answers with a
/// view (`clients`, `help`) too.
#[tokio::test]
async fn control_commands_in_any_case_at_the_prompt() {
    let exchanges = session().await;
    let (mut app, _store) = app_over(&exchanges, false);
    let command = |app: &mut App, text: &str| {
        key(app, KeyCode::Char(':'));
        keys(app, text);
        key(app, KeyCode::Enter);
    };
    command(&mut app, "Placement FRONT");
    assert_eq!(app.message(), Some("placement: front (was spec)"));
    command(&mut app, "CAP Produce=8");
    assert_eq!(
        app.message(),
        Some("cap produce=8 (was uncapped; applies to connections whose ApiVersions comes later)")
    );
    command(&mut app, "Clients");
    assert_eq!(app.view, View::Clients);
    command(&mut app, "HELP");
    assert!(app.help);
}

#[tokio::test]
async fn w_writes_the_exchanges_to_pcapng_and_json_lines() {
    let exchanges = session().await;
    let (mut app, _store) = app_over(&exchanges, false);
    let dir = tempfile::tempdir().unwrap();
    for name in ["out.pcapng", "out.jsonl"] {
        let path = dir.path().join(name);
        key(&mut app, KeyCode::Char('w'));
        app.handle_event(Event::Key(KeyEvent::new(
            KeyCode::Char('u'),
            KeyModifiers::CONTROL,
        )));
        keys(&mut app, path.to_str().unwrap());
        key(&mut app, KeyCode::Enter);
        let msg = app.message().unwrap().to_string();
        assert!(msg.starts_with("wrote 6 exchanges"), "{msg}");
        let bytes = std::fs::read(&path).unwrap();
        if name.ends_with(".jsonl") {
            let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&bytes)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines.iter().filter(|l| l["api_key"].is_number()).count(), 6);
        } else {
            // A pcapng section header block.
            assert_eq!(&bytes[..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
        }
    }
    key(&mut app, KeyCode::Char('w'));
    app.handle_event(Event::Key(KeyEvent::new(
        KeyCode::Char('u'),
        KeyModifiers::CONTROL,
    )));
    keys(&mut app, "/nonexistent-dir/x.pcapng");
    key(&mut app, KeyCode::Enter);
    assert!(app
        .message()
        .unwrap()
        .starts_with("cannot write /nonexistent-dir/x.pcapng"));
}

#[tokio::test]
async fn clients_view_and_help_overlay() {
    let exchanges = session().await;
    let (mut app, _store) = app_over(&exchanges, true);
    // The detector runs as a task over the store: wait for it.
    for _ in 0..100 {
        app.tick();
        let t = render(&mut app, 120, 36);
        if text(&t).contains("clients 2 open") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    key(&mut app, KeyCode::Char('2'));
    let t = render(&mut app, 120, 36);
    snapshot("clients_120x36", &text(&t));
    key(&mut app, KeyCode::Char('?'));
    let t = render(&mut app, 120, 36);
    let screen = text(&t);
    snapshot("help_120x36", &screen);
    for (_, keys, _) in chronik_tui::tui::components::help::KEYS {
        assert!(screen.contains(keys), "help lists {keys}");
    }
    key(&mut app, KeyCode::Esc);
    assert!(!app.help);
    key(&mut app, KeyCode::Char('q'));
    assert!(app.quit);
}

/// The list holds no row of an exchange the store has let go (its byte cap here), so a capture
/// larger than the cap does not pile up in the UI: the evicted exchanges are freed.
#[tokio::test(flavor = "multi_thread")]
async fn rows_of_exchanges_the_store_let_go_are_let_go() {
    let exchanges = session().await;
    // Room for the newest four.
    let cap: usize = exchanges[2..].iter().map(Exchange::size).sum();
    let store = Store::new(StoreLimits {
        max_exchanges: 1000,
        max_bytes: cap,
    });
    let first: Vec<Arc<Exchange>> = exchanges[..3]
        .iter()
        .map(|e| store.push(e.clone()))
        .collect();
    let mut app = app_with(&store, Settings::new(Knobs::default()), None);
    // A tick takes at most a sixteenth of the byte cap (one exchange, here).
    for _ in 0..6 {
        app.tick();
    }
    let screen = text(&render(&mut app, 120, 36));
    let title = format!("Exchanges {0}/{0}", store.snapshot().len());
    assert!(screen.contains(&title), "{title} in\n{screen}");
    for ex in &exchanges[3..] {
        store.push(ex.clone());
    }
    for _ in 0..6 {
        app.tick();
    }
    let held = store.snapshot();
    assert!(held.len() < exchanges.len(), "the cap evicts");
    let screen = text(&render(&mut app, 120, 36));
    let title = format!("Exchanges {0}/{0}", held.len());
    assert!(screen.contains(&title), "{title} in\n{screen}");
    for ex in &first {
        if ex.id < held[0].id {
            assert_eq!(Arc::strong_count(ex), 1, "exchange {} still held", ex.id);
        }
    }
}

/// The shipped healthy capture replayed (in the process) against `--placement front`: the
/// recorded and live exchanges side by side, in the order the capture has them.
async fn front_replay_view() -> chronik_tui::tui::replay::ReplayView {
    use chronik_tui::cli::{Cli, Command};
    use chronik_tui::replay::{self, ReplayOptions};
    use clap::Parser;
    let capture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/captures/kafka-python-2-spec.pcapng"
    );
    let cli = Cli::try_parse_from([
        "chronik-tui",
        "replay",
        capture,
        "--kafka-port",
        "19094",
        "--placement",
        "front",
        // At the capture's pace (0.3 s), so across connections in its order: the Metadata
        // about every topic comes before the one that creates the topic.
        // The capture holds the ApiVersions list of the broker that recorded it, which grows
        // with every API served since: left out of the comparison.
        "--ignore",
        "api_versions.response.api_keys",
    ])
    .unwrap();
    let Some(Command::Replay(args)) = cli.command else {
        panic!("replay arguments");
    };
    let mut started = replay::start(&ReplayOptions::from_args(&args).unwrap())
        .await
        .unwrap();
    let mut results = Vec::new();
    while let Some(r) = started.results.recv().await {
        results.push(r);
    }
    let total = started.exchanges;
    started.finish().await;
    // The broker's address changes from run to run; the label is the view's to show.
    let mut view = chronik_tui::tui::replay::ReplayView::new(
        "the embedded broker (placement front)".into(),
        total,
        Vec::new(),
        Theme::default_theme(),
    );
    // Results arrive in any order; the view keeps the capture's.
    for r in results.into_iter().rev() {
        view.push(r);
    }
    view
}

fn replay_key(view: &mut chronik_tui::tui::replay::ReplayView, c: char) {
    view.handle_event(Event::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::NONE,
    )));
}

fn render_replay(
    view: &mut chronik_tui::tui::replay::ReplayView,
    w: u16,
    h: u16,
) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view.draw(f)).unwrap();
    t
}

/// `d` goes from difference to difference of the ProduceResponse, each selected on both sides:
/// the field on the side that has it, its counterpart (or its parent) on the other; the
/// differing bytes in each hex view in the difference's colour.
#[tokio::test]
async fn replay_view_walks_the_differences_side_by_side() {
    let mut view = front_replay_view().await;
    // The first result to arrive was selected; g goes to the capture's first.
    replay_key(&mut view, 'g');
    let first = text(&render_replay(&mut view, 120, 36));
    assert!(first.contains("▶#1     conn=1   ApiVersions v0"), "{first}");
    assert!(first.contains("4 same, 1 with differences"), "{first}");
    replay_key(&mut view, 'd');
    let t = render_replay(&mut view, 120, 36);
    snapshot("replay_120x36", &text(&t));
    let screen = text(&t);
    assert!(screen.contains("▶#5     conn=2   Produce v7"), "{screen}");
    // Both trees at the array's length: 1 recorded, 0 live.
    assert!(
        screen.contains("Recorded: produce.response.responses.array_length")
            && screen.contains("Live: produce.response.responses.array_length"),
        "{screen}"
    );
    let theme = Theme::default_theme();
    let changed = cells_with_bg(&t, theme.diff_changed.bg.unwrap());
    // In each hex pane: the 4 bytes of the array length and of throttle_time_ms, as hex and
    // as text; the selected one is drawn as the highlight instead.
    let left: Vec<_> = changed.iter().filter(|(x, _, _)| *x < 60).collect();
    let right: Vec<_> = changed.iter().filter(|(x, _, _)| *x >= 60).collect();
    assert!(!left.is_empty() && !right.is_empty(), "{changed:?}");
    let expect = [
        ("Recorded: produce.response.responses", "−"),
        ("Recorded: produce.response.throttle_time_ms", "≠"),
        ("Recorded: kafka.response", "+"),
    ];
    for (title, sign) in expect {
        replay_key(&mut view, 'd');
        let screen = text(&render_replay(&mut view, 120, 36));
        assert!(screen.contains(title), "{title}:\n{screen}");
        assert!(
            screen.lines().any(|l| l.contains('▶') && l.contains(sign)),
            "the selected line carries {sign}:\n{screen}"
        );
    }
    // Past the last one: said, and the selection stays.
    replay_key(&mut view, 'd');
    let screen = text(&render_replay(&mut view, 120, 36));
    assert!(screen.contains("no difference after this one"), "{screen}");
    // Back with D, and to another exchange with N.
    replay_key(&mut view, 'D');
    let screen = text(&render_replay(&mut view, 120, 36));
    assert!(
        screen.contains("Recorded: produce.response.throttle_time_ms"),
        "{screen}"
    );
    replay_key(&mut view, 'N');
    let screen = text(&render_replay(&mut view, 120, 36));
    assert!(screen.contains("▶#4     conn=2   Metadata v1"), "{screen}");
    // (Not snapshotted: the live Metadata names the replay broker's port.)
    replay_key(&mut view, 'n');
    snapshot("replay_80x24", &text(&render_replay(&mut view, 80, 24)));
}

/// The lint in the views: the list flags the row, the tree lists the finding under the
/// response's title and flags the field on those bytes, and selecting the finding highlights
/// its bytes in the hex view, in the error style.
#[tokio::test]
async fn a_lint_finding_is_flagged_in_the_list_listed_in_the_tree_and_marked_in_the_hex() {
    let front =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures/kafka-python-2-front.pcapng");
    let exchanges: Vec<Exchange> = common::capture::decode(&front, 19093)
        .iter()
        .map(|e| (**e).clone())
        .collect();
    let (mut app, _store) = app_over(&exchanges, false);
    key(&mut app, KeyCode::End);
    assert_eq!(app.list.selected_exchange().unwrap().api_key, 0);
    key(&mut app, KeyCode::Enter);
    app.tree
        .select_side(chronik_tui::tui::components::field_tree::Side::Response);
    key(&mut app, KeyCode::Down);
    let t = render(&mut app, 120, 36);
    let screen = text(&t);
    let row = screen.lines().find(|l| l.contains("Produce v7")).unwrap();
    assert!(row.contains("⚑"), "{screen}");
    assert!(
        screen.contains("┃▶  ⚑ error field-misplaced: throttle_time_ms "),
        "{screen}"
    );
    let err = Theme::default_theme().hex_error.bg.unwrap();
    let hl = Theme::default_theme().hex_highlight.bg.unwrap();
    let hex = app.hex.area;
    let mut marked: Vec<(u16, u16, String)> = cells_with_bg(&t, hl)
        .into_iter()
        .chain(cells_with_bg(&t, err))
        .filter(|(x, _, _)| *x >= hex.x)
        .collect();
    marked.sort();
    let marked: String = marked.into_iter().map(|(_, _, s)| s).collect();
    // Bytes 8-11 of the response (a throttle_time_ms of 0), in hex and in the ASCII column.
    assert_eq!(marked, "00000000....", "{screen}");
}

/// A filter over more rows than the UI checks at once is applied in the background: the list
/// stays as it was meanwhile, the status bar says how far it got, keys still work, and the result
/// replaces the list when a tick finds it. Esc cancels one and leaves the list as it was.
#[tokio::test]
async fn a_filter_over_many_exchanges_shows_progress_and_esc_cancels_it() {
    let exchanges = session().await;
    let many: Vec<Exchange> = (0..2000)
        .map(|i| {
            let mut ex = exchanges[i as usize % exchanges.len()].clone();
            ex.correlation_id = i;
            ex
        })
        .collect();
    let (mut app, _store) = app_over(&many, false);
    app.list.inline_max = 100;
    assert_eq!(app.list.counts(), (2000, 2000));
    key(&mut app, KeyCode::Char('/'));
    keys(&mut app, "corr < 10 || corr >= 1995");
    key(&mut app, KeyCode::Enter);
    // Until a tick takes the result: every row, and the progress first on the status bar.
    assert_eq!(app.list.counts(), (2000, 2000));
    let screen = text(&render(&mut app, 120, 36));
    let status = screen.lines().nth(34).unwrap();
    assert!(
        status.starts_with(" filter corr < 10 || corr >= 1995: ")
            && status.contains("% … (Esc: cancel) │ broker 127.0.0.1:9092"),
        "{status}"
    );
    // Keys still move the selection over the list as it is.
    key(&mut app, KeyCode::Up);
    assert_eq!(app.list.selected_exchange().unwrap().correlation_id, 1998);
    let mut ticks = 0;
    while app.list.refilter_progress().is_some() {
        assert!(ticks < 3000, "the filter never finished");
        ticks += 1;
        std::thread::sleep(Duration::from_millis(10));
        app.tick();
    }
    assert_eq!(app.list.counts(), (2000, 15));
    assert_eq!(
        app.message(),
        Some("filter corr < 10 || corr >= 1995: 15 rows")
    );
    assert_eq!(
        app.list.selected_exchange().unwrap().correlation_id,
        1998,
        "the selected row still passes and stays selected"
    );
    let screen = text(&render(&mut app, 120, 36));
    assert!(
        screen.lines().nth(34).unwrap().starts_with(" broker"),
        "{screen}"
    );
    // Another filter, cancelled with Esc before its result is in: the list stays as it was.
    key(&mut app, KeyCode::Char('/'));
    app.handle_event(Event::Key(KeyEvent::new(
        KeyCode::Char('u'),
        KeyModifiers::CONTROL,
    )));
    keys(&mut app, "corr == 7");
    key(&mut app, KeyCode::Enter);
    assert!(app.list.refilter_progress().is_some());
    key(&mut app, KeyCode::Esc);
    assert!(app.list.refilter_progress().is_none());
    assert_eq!(app.message(), Some("filter corr == 7 cancelled"));
    for _ in 0..5 {
        app.tick();
    }
    assert_eq!(app.list.counts(), (2000, 15));
    assert_eq!(
        app.list.filter().map(|f| f.text()),
        Some("corr < 10 || corr >= 1995")
    );
    // Esc again clears the filter in force, at once.
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.list.counts(), (2000, 2000));
}
