//! The app: owns the panes, samples the store on each tick, routes keys and mouse events, and
//! lays the panes out. Settings change only through the control language, so the UI and the
//! headless input do the same thing and every change is recorded as a marker.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::components::charts::Charts;
use super::components::clients::{ClientsData, ClientsView};
use super::components::exchange_list::ExchangeList;
use super::components::field_tree::{FieldTree, Side};
use super::components::hex_view::HexView;
use super::components::input::{InputEvent, LineInput};
use super::components::settings_view::{SettingsAction, SettingsView};
use super::components::{contains, fit, help, hint, status_bar, Outcome};
use super::theme::Theme;
use crate::capture::{now_micros, Exchange, Store};
use crate::control::Control;
use crate::diagnose::{ConnInfo, DiagnoseHandle};
use crate::settings::Settings;

/// Most exchanges taken from the store per tick, so a burst never freezes the screen.
const INGEST_PER_TICK: usize = 20_000;
/// Share of the store's byte cap taken per tick: while a tick dissects its batch the source may
/// go on and the store evict, and what the batch holds is then held only by the UI.
const INGEST_SHARE_OF_CAP: usize = 16;

/// How long a message stays on the bottom line.
const MESSAGE_FOR: Duration = Duration::from_secs(8);

/// The top-level views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Exchanges,
    Clients,
    Settings,
}

/// The pane with focus in the exchanges view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    List,
    Tree,
    Hex,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Prompt {
    Filter,
    Command,
    /// A settings edit: the command is this prefix plus the text.
    Ask(String),
    /// A file name to write the store to.
    Export,
}

/// What the app needs from the rest of the program.
pub struct AppDeps {
    pub store: Arc<Store>,
    pub settings: Arc<Settings>,
    /// The stall detector over the same store (None: no client table).
    pub clients: Option<DiagnoseHandle>,
    pub theme: Theme,
    /// Shown in the status bar, e.g. `broker 127.0.0.1:9092`.
    pub source: String,
    /// Said once on the bottom line at start (e.g. a theme that did not load).
    pub startup_message: Option<String>,
    /// The source's progress for the status bar (a file being read), called at each draw.
    pub source_status: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    /// The broker address written into exported pcapng for exchanges that name none.
    pub export_server: std::net::SocketAddr,
    /// A scenario stepped by hand (`chronik-tui repro`): its panel and the n/r/b keys.
    pub steps: Option<crate::scenario::drive::StepsHandle>,
}

/// The whole UI state.
pub struct App {
    store: Arc<Store>,
    settings: Arc<Settings>,
    control: Control,
    detector: Option<DiagnoseHandle>,
    pub theme: Theme,
    source: String,
    source_status: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    export_server: std::net::SocketAddr,
    pub view: View,
    pub focus: Focus,
    pub list: ExchangeList,
    pub tree: FieldTree,
    pub hex: HexView,
    clients_view: ClientsView,
    settings_view: SettingsView,
    charts: Charts,
    input: LineInput,
    prompt: Option<Prompt>,
    /// Why the text in the prompt was not accepted (shown beside it while it stays open).
    prompt_error: Option<String>,
    pub help: bool,
    pub paused: bool,
    pub quit: bool,
    message: Option<(String, bool, Instant)>,
    last_exchange: u64,
    last_marker: u64,
    conns: Vec<ConnInfo>,
    conn_map: HashMap<u64, ConnInfo>,
    /// The clock charts use (µs since the epoch); tests fix it.
    pub clock: fn() -> i64,
    steps: Option<crate::scenario::drive::StepsHandle>,
    /// Say `filter X: N rows` when the filter being applied in the background is done.
    announce_filter: bool,
}

impl App {
    /// An app over a store and its settings.
    /// How many of `new` (oldest first) to take this tick: at most [`INGEST_PER_TICK`], and at
    /// most 1/[`INGEST_SHARE_OF_CAP`] of the store's byte cap (at least one exchange).
    fn ingest_count(&self, new: &[Arc<Exchange>]) -> usize {
        let budget = self.store.limits().max_bytes / INGEST_SHARE_OF_CAP;
        let mut bytes = 0usize;
        let within = new
            .iter()
            .position(|e| {
                bytes += e.size();
                bytes > budget
            })
            .map_or(new.len(), |i| i.max(1));
        within.min(INGEST_PER_TICK)
    }

    pub fn new(deps: AppDeps) -> App {
        let cap = deps.store.limits().max_exchanges;
        let control = Control::new(deps.settings.clone()).with_markers(deps.store.clone(), "tui");
        let mut app = App {
            store: deps.store,
            settings: deps.settings,
            control,
            detector: deps.clients,
            theme: deps.theme,
            source: deps.source,
            source_status: deps.source_status,
            export_server: deps.export_server,
            view: View::Exchanges,
            focus: Focus::List,
            list: ExchangeList::new(cap),
            tree: FieldTree::new(),
            hex: HexView::default(),
            clients_view: ClientsView::default(),
            settings_view: SettingsView::default(),
            charts: Charts::default(),
            input: LineInput::new(""),
            prompt: None,
            prompt_error: None,
            help: false,
            paused: false,
            quit: false,
            message: None,
            last_exchange: 0,
            last_marker: 0,
            conns: Vec::new(),
            conn_map: HashMap::new(),
            clock: now_micros,
            steps: deps.steps,
            announce_filter: false,
        };
        if let Some(m) = deps.startup_message {
            app.say(m, true);
        }
        app
    }

    fn say(&mut self, text: String, error: bool) {
        self.message = Some((text, error, Instant::now()));
    }

    /// The last message on the bottom line, if still shown.
    pub fn message(&self) -> Option<&str> {
        self.message
            .as_ref()
            .filter(|(_, _, at)| at.elapsed() < MESSAGE_FOR)
            .map(|(m, _, _)| m.as_str())
    }

    /// Why the text in the open prompt was not accepted, if it was not.
    pub fn prompt_error(&self) -> Option<&str> {
        self.prompt.as_ref().and(self.prompt_error.as_deref())
    }

    /// Opens a prompt labelled `label` with `text` to edit.
    fn open_prompt(&mut self, prompt: Prompt, label: &str, text: &str) {
        self.prompt = Some(prompt);
        self.prompt_error = None;
        self.input.prompt = label.to_string();
        self.input.start(text);
    }

    /// Samples the store and the detector: new rows, client states, charts.
    pub fn tick(&mut self) {
        if let Some(d) = &self.detector {
            self.conns = d.connections();
            self.conns.sort_by_key(|c| c.conn);
            self.conn_map = self.conns.iter().map(|c| (c.conn, c.clone())).collect();
        }
        self.charts.advance((self.clock)().div_euclid(1_000_000));
        if self.list.poll_refilter() {
            if std::mem::take(&mut self.announce_filter) {
                if let Some(text) = self.list.filter().map(|f| f.text().to_string()) {
                    let (_, shown) = self.list.counts();
                    self.say(format!("filter {text}: {shown} rows"), false);
                }
            }
            self.sync_detail();
        }
        if self.paused {
            return;
        }
        // Rows of exchanges the store has let go are let go too: the list holds no more than
        // the store's caps (count and bytes) allow.
        if let Some(oldest) = self.store.oldest_id() {
            self.list.forget_before(oldest);
        }
        let mut new = self.store.since(self.last_exchange);
        new.truncate(self.ingest_count(&new));
        if let Some(last) = new.last() {
            self.last_exchange = last.id;
        }
        let markers = self.store.markers_since(self.last_marker);
        if let Some(m) = markers.last() {
            self.last_marker = m.id;
        }
        if new.is_empty() && markers.is_empty() {
            return;
        }
        for ex in &new {
            self.charts.record(ex.request_at, ex.latency_micros());
        }
        self.list.push(new, markers, &self.conn_map);
        if self.list.follow_tail {
            self.sync_detail();
        }
    }

    /// Shows the selected exchange in the tree and the hex view.
    fn sync_detail(&mut self) {
        self.tree
            .set_exchange(self.list.selected_exchange().cloned());
        self.hex.follow(self.tree.selected_span());
    }

    /// After the hex cursor moved: select the field that owns the byte.
    fn sync_from_hex(&mut self) {
        if let Some(side) = self.hex.side {
            self.tree
                .select_byte(side, self.hex.buffer, self.hex.cursor);
        }
    }

    /// Handles one terminal event.
    pub fn handle_event(&mut self, event: Event) {
        match event {
            Event::Key(k) if k.kind != KeyEventKind::Release => self.on_key(k),
            Event::Mouse(m) => self.on_mouse(m),
            _ => {}
        }
    }

    /// Runs a control command as typed (`placement front`), saying what it did.
    pub fn run_command(&mut self, line: &str) {
        // Two commands the UI answers with a view of its own.
        match crate::control::parse(line) {
            Ok(Some(crate::control::Command::Clients)) => {
                self.view = View::Clients;
                return;
            }
            Ok(Some(crate::control::Command::Help)) => {
                self.help = true;
                return;
            }
            _ => {}
        }
        if let Some(reply) = self.control.run_line(line) {
            if reply.ok {
                tracing::info!(command = %reply.input, reply = %reply.message, "tui command");
            }
            self.say(reply.message.replace('\n', "; "), !reply.ok);
        }
    }

    /// Writes every exchange, connection event and marker held now to a file.
    pub fn export(&mut self, path: &str) {
        if path.is_empty() {
            return;
        }
        let path = std::path::Path::new(path);
        match crate::capture::pcap::record::export_store(&self.store, path, self.export_server) {
            Ok(n) => {
                tracing::info!(path = %path.display(), exchanges = n, "exported");
                self.say(format!("wrote {n} exchanges to {}", path.display()), false);
            }
            Err(e) => self.say(format!("cannot write {}: {e}", path.display()), true),
        }
    }

    /// Applies a display filter (empty: none); a filter that does not parse changes nothing
    /// and says why.
    fn set_filter(&mut self, text: &str) -> Result<(), String> {
        let text = text.trim();
        self.announce_filter = false;
        if text.is_empty() {
            self.list.refilter(None, self.list.conn, &self.conn_map);
            self.say("filter cleared".into(), false);
            self.sync_detail();
            return Ok(());
        }
        let f = crate::filter::parse(text).map_err(|e| e.to_string())?;
        if self.list.refilter(Some(f), self.list.conn, &self.conn_map) {
            // Applied in the background: the status bar shows how far, the tick that finds the
            // result says it.
            self.announce_filter = true;
            return Ok(());
        }
        let (_, shown) = self.list.counts();
        self.say(format!("filter {text}: {shown} rows"), false);
        self.sync_detail();
        Ok(())
    }

    fn on_key(&mut self, key: KeyEvent) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if let Some(prompt) = self.prompt.clone() {
            match self.input.on_key(key) {
                InputEvent::Editing => {}
                InputEvent::Cancel => {
                    self.prompt = None;
                    self.prompt_error = None;
                }
                InputEvent::Submit(text) => {
                    let outcome = match prompt {
                        Prompt::Filter => self.set_filter(&text),
                        Prompt::Command => {
                            self.run_command(&text);
                            Ok(())
                        }
                        Prompt::Ask(prefix) => {
                            self.run_command(&format!("{prefix}{text}"));
                            Ok(())
                        }
                        Prompt::Export => {
                            self.export(text.trim());
                            Ok(())
                        }
                    };
                    // A text that was not accepted stays in the prompt, to be fixed, with the
                    // reason beside it.
                    match outcome {
                        Ok(()) => {
                            self.prompt = None;
                            self.prompt_error = None;
                        }
                        Err(why) => self.prompt_error = Some(why),
                    }
                }
            }
            return;
        }
        if ctrl && key.code == KeyCode::Char('c') {
            self.quit = true;
            return;
        }
        if self.help {
            if matches!(
                key.code,
                KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q')
            ) {
                self.help = false;
            }
            return;
        }
        // Esc first cancels a filter being applied; the list stays as it was.
        if key.code == KeyCode::Esc {
            if let Some(p) = self.list.cancel_refilter() {
                self.announce_filter = false;
                self.say(format!("filter {} cancelled", p.what()), false);
                return;
            }
        }
        // Keys of the pane with focus first (they include movement keys such as g and G).
        if self.pane_key(key) {
            return;
        }
        if let Some(steps) = &self.steps {
            use crate::scenario::drive::StepCommand;
            let cmd = match key.code {
                KeyCode::Char('n') => Some(StepCommand::Next),
                KeyCode::Char('r') => Some(StepCommand::RunAll),
                KeyCode::Char('b') => Some(StepCommand::Restart),
                _ => None,
            };
            if let Some(cmd) = cmd {
                let busy = steps.snapshot().busy;
                match busy {
                    Some(what) => self.say(format!("wait: {what}"), true),
                    None => steps.send(cmd),
                }
                return;
            }
        }
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('1') => self.view = View::Exchanges,
            KeyCode::Char('2') => self.view = View::Clients,
            KeyCode::Char('3') => self.view = View::Settings,
            KeyCode::Tab => self.cycle_focus(1),
            KeyCode::BackTab => self.cycle_focus(-1),
            KeyCode::Char('p') => {
                let next = self.settings.get().placement.next();
                self.run_command(&format!("placement {next}"));
            }
            KeyCode::Char('/') => {
                let current = self
                    .list
                    .filter()
                    .map(|f| f.text().to_string())
                    .unwrap_or_default();
                self.open_prompt(Prompt::Filter, "filter> ", &current);
            }
            KeyCode::Char(':') => self.open_prompt(Prompt::Command, ":", ""),
            KeyCode::Char('f') => self.follow_connection(None),
            KeyCode::Char('w') => {
                let now = crate::capture::render::clock((self.clock)());
                let name = format!("chronik-tui-{}.pcapng", now[..8].replace(':', ""));
                self.open_prompt(
                    Prompt::Export,
                    "write to (.pcapng, or .json/.jsonl)> ",
                    &name,
                );
            }
            KeyCode::Esc if self.list.conn.is_some() || self.list.filter().is_some() => {
                self.list.refilter(None, None, &self.conn_map);
                self.say("showing every exchange".into(), false);
                self.sync_detail();
            }
            _ => {}
        }
    }

    /// Follows one connection (None: the selected exchange's; again: all connections).
    fn follow_connection(&mut self, conn: Option<u64>) {
        let target = conn.or_else(|| self.list.selected_exchange().map(|e| e.conn));
        let next = if conn.is_none() && self.list.conn.is_some() {
            None
        } else {
            target
        };
        let filter = self.list.filter().cloned();
        self.list.refilter(filter, next, &self.conn_map);
        self.say(
            match next {
                Some(c) => format!("following connection {c} (f again: all)"),
                None => "all connections".into(),
            },
            false,
        );
        self.sync_detail();
    }

    fn cycle_focus(&mut self, delta: i32) {
        if self.view != View::Exchanges {
            return;
        }
        let order = [Focus::List, Focus::Tree, Focus::Hex];
        let i = order.iter().position(|f| *f == self.focus).unwrap_or(0) as i32;
        self.focus = order[(i + delta).rem_euclid(3) as usize];
    }

    /// Keys for the pane with focus; true when used.
    fn pane_key(&mut self, key: KeyEvent) -> bool {
        match self.view {
            View::Clients => {
                if key.code == KeyCode::Enter {
                    if let Some(c) = self.clients_view.selected_conn {
                        self.view = View::Exchanges;
                        self.focus = Focus::List;
                        self.list
                            .refilter(self.list.filter().cloned(), Some(c), &self.conn_map);
                        self.sync_detail();
                        self.say(format!("following connection {c} (f or Esc: all)"), false);
                    }
                    return true;
                }
                self.clients_view.on_key(key, self.conns.len()) == Outcome::Consumed
            }
            View::Settings => {
                let knobs = self.settings.get();
                let (outcome, action) = self.settings_view.on_key(key, &knobs);
                match action {
                    Some(SettingsAction::Run(cmd)) => self.run_command(&cmd),
                    Some(SettingsAction::Ask {
                        prompt,
                        initial,
                        prefix,
                    }) => self.open_prompt(Prompt::Ask(prefix), &prompt, &initial),
                    None => {}
                }
                outcome == Outcome::Consumed
            }
            View::Exchanges => match self.focus {
                Focus::List => {
                    match key.code {
                        KeyCode::Enter => {
                            // Inspecting a row: new arrivals must not move the selection.
                            self.list.follow_tail = false;
                            self.focus = Focus::Tree;
                            return true;
                        }
                        KeyCode::Char(' ') => {
                            self.paused = !self.paused;
                            self.say(
                                if self.paused {
                                    "paused: new exchanges are held in the store".into()
                                } else {
                                    "resumed".into()
                                },
                                false,
                            );
                            return true;
                        }
                        _ => {}
                    }
                    let used = self.list.on_key(key) == Outcome::Consumed;
                    if used {
                        self.sync_detail();
                    }
                    used
                }
                Focus::Tree => {
                    if key.code == KeyCode::Char('t') {
                        if !self.tree.select_name_on(Side::Response, "throttle_time_ms") {
                            self.say("this response has no throttle_time_ms".into(), true);
                        }
                        self.hex.follow(self.tree.selected_span());
                        return true;
                    }
                    let used = self.tree.on_key(key) == Outcome::Consumed;
                    if used {
                        self.hex.follow(self.tree.selected_span());
                    }
                    used
                }
                Focus::Hex => {
                    if key.code == KeyCode::Char('r') {
                        let other = match self.hex.side {
                            Some(Side::Request) => Side::Response,
                            _ => Side::Request,
                        };
                        self.tree.select_side(other);
                        self.hex.follow(self.tree.selected_span());
                        return true;
                    }
                    let used = self.hex.on_key(key) == Outcome::Consumed;
                    if used {
                        self.sync_from_hex();
                    }
                    used
                }
            },
        }
    }

    fn on_mouse(&mut self, m: MouseEvent) {
        let (col, row) = (m.column, m.row);
        match m.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                if self.help {
                    self.help = false;
                    return;
                }
                match self.view {
                    View::Exchanges => {
                        if contains(self.list.area, col, row) {
                            self.focus = Focus::List;
                            if self.list.click(row) {
                                self.sync_detail();
                            }
                        } else if contains(self.tree.area, col, row) {
                            self.focus = Focus::Tree;
                            if self.tree.click(col, row) {
                                self.hex.follow(self.tree.selected_span());
                            }
                        } else if contains(self.hex.area, col, row) {
                            self.focus = Focus::Hex;
                            if self.hex.click(col, row) {
                                self.sync_from_hex();
                            }
                        }
                    }
                    View::Clients => {
                        self.clients_view.click(row, self.conns.len());
                    }
                    View::Settings => {}
                }
            }
            MouseEventKind::ScrollDown | MouseEventKind::ScrollUp => {
                let d: isize = if m.kind == MouseEventKind::ScrollDown {
                    3
                } else {
                    -3
                };
                if self.view != View::Exchanges {
                    return;
                }
                if contains(self.list.area, col, row) {
                    self.list.move_by(d);
                    self.sync_detail();
                } else if contains(self.tree.area, col, row) {
                    self.tree.scroll(d);
                    self.hex.follow(self.tree.selected_span());
                } else if contains(self.hex.area, col, row) {
                    self.hex.scroll(d);
                    self.sync_from_hex();
                }
            }
            _ => {}
        }
    }

    /// Draws the whole screen.
    pub fn draw(&mut self, f: &mut Frame) {
        let area = f.area();
        f.render_widget(Paragraph::new("").style(self.theme.base), area);
        let [main, chart, status, bottom] = Layout::vertical([
            Constraint::Min(6),
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(area);
        match self.view {
            View::Exchanges => self.draw_exchanges(f, main),
            View::Clients => {
                let store = self.store.clone();
                let thresholds =
                    crate::diagnose::ThresholdsMs::from(self.settings.get().stall).to_string();
                self.clients_view.draw(
                    f,
                    main,
                    &self.theme,
                    ClientsData {
                        clients: &self.conns,
                        in_flight: &|c| store.in_flight(c),
                        thresholds: &thresholds,
                    },
                );
            }
            View::Settings => {
                let knobs = self.settings.get();
                self.settings_view.draw(f, main, true, &self.theme, &knobs);
            }
        }
        self.charts.draw(f, chart, &self.theme);
        let source = match &self.source_status {
            Some(s) => s(),
            None => self.source.clone(),
        };
        status_bar::draw(
            f,
            status,
            &self.theme,
            &self.settings.get(),
            &self.conns,
            self.store.stats(),
            &source,
            self.list.refilter_progress().map(|p| p.label()).as_deref(),
        );
        self.draw_bottom(f, bottom);
        if self.help {
            help::draw(f, area, &self.theme);
        }
    }

    fn draw_exchanges(&mut self, f: &mut Frame, area: Rect) {
        let area = match &self.steps {
            Some(steps) => {
                let state = steps.snapshot();
                let h = super::components::steps::height(&state, area.height / 2);
                let [panel, rest] =
                    Layout::vertical([Constraint::Length(h), Constraint::Min(6)]).areas(area);
                super::components::steps::draw(f, panel, &self.theme, &state);
                rest
            }
            None => area,
        };
        let [top, detail] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(area);
        let hex_width = if area.width >= 120 {
            Constraint::Length(73)
        } else {
            Constraint::Percentage(50)
        };
        let [tree_area, hex_area] =
            Layout::horizontal([Constraint::Min(20), hex_width]).areas(detail);
        let pending = self.paused.then(|| {
            let newest = self.store.newest_id();
            newest.saturating_sub(self.last_exchange) as usize
        });
        self.list.draw(
            f,
            top,
            self.focus == Focus::List,
            &self.theme,
            &self.conn_map,
            pending,
        );
        self.tree
            .draw(f, tree_area, self.focus == Focus::Tree, &self.theme);
        self.hex.draw_for(
            f,
            hex_area,
            self.focus == Focus::Hex,
            &self.theme,
            &self.tree,
            &[],
        );
    }

    fn draw_bottom(&mut self, f: &mut Frame, area: Rect) {
        if self.prompt.is_some() {
            let Some(why) = &self.prompt_error else {
                self.input.draw(f, area, &self.theme);
                return;
            };
            // The prompt keeps its text (it scrolls to keep the cursor in view when squeezed);
            // the reason it was not accepted takes the rest of the line, after the cursor's cell.
            let why = format!(" ✗ {why}");
            let total = area.width as usize;
            let wanted = self.input.width_wanted();
            let input_w = if wanted + why.chars().count() <= total {
                wanted
            } else {
                wanted
                    .min(total / 2)
                    .max(total.saturating_sub(why.chars().count()))
            };
            let [input_area, why_area] =
                Layout::horizontal([Constraint::Length(input_w as u16), Constraint::Min(0)])
                    .areas(area);
            self.input.draw(f, input_area, &self.theme);
            f.render_widget(
                Paragraph::new(Line::styled(
                    fit(&why, why_area.width as usize),
                    self.theme.error,
                )),
                why_area,
            );
            return;
        }
        if let Some((text, error, at)) = &self.message {
            if at.elapsed() < MESSAGE_FOR {
                let style = if *error {
                    self.theme.error
                } else {
                    self.theme.ok
                };
                f.render_widget(Paragraph::new(Line::styled(text.clone(), style)), area);
                return;
            }
        }
        let tab = |n: &'static str, v: View| -> Span<'static> {
            if self.view == v {
                Span::styled(format!("[{n}]"), self.theme.selected)
            } else {
                Span::styled(format!(" {n} "), self.theme.dim)
            }
        };
        let mut spans = vec![
            tab("1 Exchanges", View::Exchanges),
            tab("2 Clients", View::Clients),
            tab("3 Settings", View::Settings),
            Span::raw("  "),
        ];
        for (k, w) in [
            ("?", "help"),
            ("/", "filter"),
            (":", "command"),
            ("p", "placement"),
            ("q", "quit"),
        ] {
            spans.extend(hint(k, w, &self.theme));
        }
        f.render_widget(Paragraph::new(Line::from(spans)), area);
    }
}
