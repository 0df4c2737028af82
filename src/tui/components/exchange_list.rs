//! The exchange list: one row per exchange (and a row per marker), newest at the bottom,
//! following the tail until the user scrolls up. Rows are sampled from the store by the app's
//! tick; the broker never waits on the list.

use std::collections::HashMap;

use crate::tui::blocks::Blocks;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{cell, clock_ms, millis, pane, scroll_to, Outcome};
use crate::capture::render;
use crate::capture::{Dissected, Exchange, Marker, Status};
use crate::diagnose::{ConnInfo, Health};
use crate::filter::{Filter, Subject};
use crate::protocol::ThrottlePlacement;
use crate::tui::theme::Theme;

/// How a row is coloured: the exchange's [`Severity`](crate::capture::Severity).
pub use crate::capture::Severity as RowClass;

/// One row as drawn: an exchange with its summary and class, or a marker.
#[derive(Debug, Clone)]
pub enum Entry {
    Exchange {
        ex: Arc<Exchange>,
        summary: String,
        class: RowClass,
    },
    Marker(Arc<Marker>),
}

impl Entry {
    /// Builds an exchange row: dissects both frames once for the summary and class, and
    /// returns the dissections for the filter.
    pub fn exchange(ex: Arc<Exchange>) -> (Entry, Dissected) {
        let dissected = ex.dissect();
        let mut summary = render::summarize(&dissected);
        match &ex.status {
            Status::Malformed { error } => summary = format!("MALFORMED: {error} {summary}"),
            Status::Unanswered => summary = format!("[unanswered] {summary}"),
            Status::NoResponse => summary = format!("[no response: acks=0] {summary}"),
            Status::Refused { reason } => summary = format!("[refused: {reason}] {summary}"),
            Status::Answered => {}
        }
        if let Some(p) = ex.placement() {
            if p.placement != ThrottlePlacement::Spec {
                summary.push_str(&format!(" [throttle {p}]"));
            }
        }
        // A flag first, where a cut summary still shows it; the findings are at its end.
        if !dissected.verdict.findings.is_empty() {
            summary = format!("⚑ {summary}");
        }
        let class = dissected.verdict.severity;
        (Entry::Exchange { ex, summary, class }, dissected)
    }
}

/// One row as held: the summary and class of an exchange are made when it is drawn
/// ([`Entry::exchange`]), so a row costs a pointer however many are held.
#[derive(Debug, Clone)]
enum Row {
    Exchange(Arc<Exchange>),
    Marker(Arc<Marker>),
}

/// Most rows a filter is applied to at once, on the UI thread; over more, it is applied on
/// worker threads while the list stays as it was (see [`ExchangeList::refilter`]).
pub const REFILTER_INLINE_MAX: usize = 5_000;

/// Rows a worker checks between looks at the cancel flag and updates of the progress.
const REFILTER_STRIDE: usize = 1024;

/// A filter being applied on worker threads over a snapshot of the rows held when it started.
struct Refilter {
    filter: Option<Filter>,
    conn: Option<u64>,
    /// First sequence number after the snapshot: rows from there on are checked as they
    /// arrive, and those that pass are kept in `tail`.
    end: u64,
    tail: Vec<u64>,
    total: usize,
    done: Arc<AtomicUsize>,
    cancel: Arc<AtomicBool>,
    /// Each worker's passing sequence numbers, ascending; the workers in order.
    workers: Vec<JoinHandle<Vec<u64>>>,
}

impl Drop for Refilter {
    /// A filter dropped before its result was taken is cancelled: its workers stop at their
    /// next look at the flag.
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// How far a filter being applied has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefilterProgress {
    /// The filter's text (empty: none).
    pub text: String,
    pub conn: Option<u64>,
    /// Rows checked / rows in the snapshot.
    pub done: usize,
    pub total: usize,
}

impl RefilterProgress {
    /// What is applied: the filter's text, else `conn=3`.
    pub fn what(&self) -> String {
        match (self.text.is_empty(), self.conn) {
            (false, _) => self.text.clone(),
            (true, Some(c)) => format!("conn={c}"),
            (true, None) => "every exchange".into(),
        }
    }

    /// `filter corr == 5: 43% …` (or `filter conn=3: …`).
    pub fn label(&self) -> String {
        let pct = (self.done * 100).checked_div(self.total).unwrap_or(100);
        format!("filter {}: {}% …", self.what(), pct.min(100))
    }
}

/// Whether an exchange passes a filter and a connection to follow; `dissected` when the caller
/// has it, else the filter dissects only the frames its names need, when they need one.
fn exchange_passes(
    filter: Option<&Filter>,
    conn: Option<u64>,
    ex: &Exchange,
    dissected: Option<&Dissected>,
    clients: &HashMap<u64, ConnInfo>,
) -> bool {
    if conn.is_some_and(|c| c != ex.conn) {
        return false;
    }
    let Some(filter) = filter else {
        return true;
    };
    let info = clients.get(&ex.conn);
    let software = info.and_then(ConnInfo::software);
    let health = info.map(|i| i.health.word());
    filter.matches(&Subject {
        exchange: ex,
        dissected,
        software: software.as_deref(),
        health,
    })
}

/// The list's state.
pub struct ExchangeList {
    entries: Blocks<Row>,
    /// Summary and class of the exchange rows drawn last, by sequence number (made again only
    /// for rows that come into view).
    drawn: HashMap<u64, (String, RowClass)>,
    /// Sequence number of `entries[0]`.
    base: u64,
    /// Sequence numbers of the rows shown (filter and connection applied), ascending.
    visible: Blocks<u64>,
    /// Index into `visible`.
    selected: Option<usize>,
    offset: usize,
    /// Marker rows held (markers always pass the filter, so all are visible).
    markers: usize,
    /// Keep the newest row selected as rows arrive.
    pub follow_tail: bool,
    /// Show only this connection.
    pub conn: Option<u64>,
    filter: Option<Filter>,
    /// Most rows kept (the store's cap).
    cap: usize,
    /// Rows on screen at the last draw (for paging).
    page: usize,
    /// The area drawn last (for the mouse).
    pub area: Rect,
    /// A filter being applied on worker threads.
    refiltering: Option<Refilter>,
    /// Most rows a filter is applied to on the UI thread ([`REFILTER_INLINE_MAX`]).
    pub inline_max: usize,
}

/// Columns: (title, width); the summary takes the rest.
fn columns(width: u16) -> Vec<(&'static str, usize)> {
    let mut c = vec![
        ("#", 6),
        ("time", 12),
        ("conn", 4),
        ("client", 12),
        ("api", 15),
        ("latency", 8),
    ];
    if width >= 110 {
        c.insert(5, ("corr", 6));
    }
    if width >= 150 {
        c.push(("size", 11));
    }
    c
}

impl ExchangeList {
    /// An empty list keeping at most `cap` rows.
    pub fn new(cap: usize) -> ExchangeList {
        ExchangeList {
            entries: Blocks::new(),
            drawn: HashMap::new(),
            base: 0,
            visible: Blocks::new(),
            selected: None,
            offset: 0,
            markers: 0,
            follow_tail: true,
            conn: None,
            filter: None,
            cap: cap.max(1),
            page: 10,
            area: Rect::default(),
            refiltering: None,
            inline_max: REFILTER_INLINE_MAX,
        }
    }

    /// Exchanges held / exchanges shown (marker rows not counted).
    pub fn counts(&self) -> (usize, usize) {
        (
            self.entries.len() - self.markers,
            self.visible.len() - self.markers,
        )
    }

    /// The display filter in force.
    pub fn filter(&self) -> Option<&Filter> {
        self.filter.as_ref()
    }

    fn passes(
        &self,
        entry: &Row,
        dissected: Option<&Dissected>,
        clients: &HashMap<u64, ConnInfo>,
    ) -> bool {
        match entry {
            Row::Marker(_) => true,
            Row::Exchange(ex) => {
                exchange_passes(self.filter.as_ref(), self.conn, ex, dissected, clients)
            }
        }
    }

    /// Appends exchanges and markers from the store (in timeline order).
    pub fn push(
        &mut self,
        exchanges: Vec<Arc<Exchange>>,
        markers: Vec<Arc<Marker>>,
        clients: &HashMap<u64, ConnInfo>,
    ) {
        // Markers go after the exchange that was newest when they were made.
        let mut markers = markers.into_iter().peekable();
        for ex in exchanges {
            while let Some(m) = markers.next_if(|m| m.after_exchange < ex.id) {
                self.append(Row::Marker(m), clients);
            }
            self.append(Row::Exchange(ex), clients);
        }
        for m in markers {
            self.append(Row::Marker(m), clients);
        }
        self.trim();
        if self.follow_tail && !self.visible.is_empty() {
            self.selected = Some(self.visible.len() - 1);
        }
    }

    fn append(&mut self, entry: Row, clients: &HashMap<u64, ConnInfo>) {
        let seq = self.base + self.entries.len() as u64;
        if matches!(entry, Row::Marker(_)) {
            self.markers += 1;
        }
        // Dissected once, if the filter in force or the one being applied needs it.
        let needs = |f: Option<&Filter>| f.is_some_and(Filter::needs_dissection);
        let dissected = match &entry {
            Row::Exchange(ex)
                if needs(self.filter.as_ref())
                    || needs(self.refiltering.as_ref().and_then(|r| r.filter.as_ref())) =>
            {
                Some(ex.dissect())
            }
            _ => None,
        };
        let dissected = dissected.as_ref();
        if self.passes(&entry, dissected, clients) {
            self.visible.push_back(seq);
        }
        // A filter being applied checks what arrives after its snapshot too.
        if let Some(r) = &mut self.refiltering {
            let pass = match &entry {
                Row::Marker(_) => true,
                Row::Exchange(ex) => {
                    exchange_passes(r.filter.as_ref(), r.conn, ex, dissected, clients)
                }
            };
            if pass {
                r.tail.push(seq);
            }
        }
        self.entries.push_back(entry);
    }

    fn trim(&mut self) {
        if self.entries.len() > self.cap {
            self.drop_front(self.entries.len() - self.cap);
        }
    }

    /// Drops the rows of exchanges older than `id` (the oldest the store still holds), and the
    /// markers before them.
    pub fn forget_before(&mut self, id: u64) {
        let drop = self
            .entries
            .iter()
            .position(|e| match e {
                Row::Exchange(ex) => ex.id >= id,
                Row::Marker(m) => m.after_exchange + 1 >= id,
            })
            .unwrap_or(self.entries.len());
        if drop > 0 {
            self.drop_front(drop);
        }
    }

    /// Drops the first `drop` rows held.
    fn drop_front(&mut self, drop: usize) {
        let mut gone_markers = 0;
        for _ in 0..drop {
            if let Some(Row::Marker(_)) = self.entries.pop_front() {
                gone_markers += 1;
            }
        }
        self.markers -= gone_markers;
        self.base += drop as u64;
        let before = self.visible.len();
        while self.visible.front().is_some_and(|s| *s < self.base) {
            self.visible.pop_front();
        }
        let gone = before - self.visible.len();
        self.selected = self
            .selected
            .and_then(|s| s.checked_sub(gone))
            .or_else(|| (!self.visible.is_empty()).then_some(0));
        self.offset = self.offset.saturating_sub(gone);
    }

    /// Applies a display filter (None: all rows) and a connection to follow, re-checking every
    /// row held; keeps the selected exchange selected when it still passes. Over more than
    /// [`ExchangeList::inline_max`] rows (and unless it shows every row) the check runs on
    /// worker threads, one per core, over a snapshot of the rows: the list stays as it was until
    /// [`ExchangeList::poll_refilter`] finds the result, rows arriving meanwhile are checked as
    /// they come, and a new call or [`ExchangeList::cancel_refilter`] cancels it. Returns true
    /// when the check goes on in the background.
    pub fn refilter(
        &mut self,
        filter: Option<Filter>,
        conn: Option<u64>,
        clients: &HashMap<u64, ConnInfo>,
    ) -> bool {
        self.refiltering = None;
        if filter.is_none() && conn.is_none() {
            // Every row: nothing to check.
            self.filter = None;
            self.conn = None;
            let visible = (self.base..self.base + self.entries.len() as u64).collect();
            self.show(visible);
            return false;
        }
        if self.entries.len() <= self.inline_max {
            self.filter = filter;
            self.conn = conn;
            let mut visible = Blocks::new();
            for (i, e) in self.entries.iter().enumerate() {
                if self.passes(e, None, clients) {
                    visible.push_back(self.base + i as u64);
                }
            }
            self.show(visible);
            return false;
        }
        let mut rows = Vec::with_capacity(self.entries.len());
        for slice in self.entries.slices() {
            rows.extend(slice.iter().map(|e| match e {
                Row::Exchange(ex) => Some(ex.clone()),
                Row::Marker(_) => None,
            }));
        }
        let snapshot: Arc<Vec<Option<Arc<Exchange>>>> = Arc::new(rows);
        let total = snapshot.len();
        let done = Arc::new(AtomicUsize::new(0));
        let cancel = Arc::new(AtomicBool::new(false));
        let clients = Arc::new(clients.clone());
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8);
        let per = total.div_ceil(threads).max(1);
        let base = self.base;
        let workers = (0..total)
            .step_by(per)
            .map(|start| {
                let end = (start + per).min(total);
                let (snapshot, done, cancel, clients) = (
                    snapshot.clone(),
                    done.clone(),
                    cancel.clone(),
                    clients.clone(),
                );
                let filter = filter.clone();
                std::thread::spawn(move || {
                    let mut out = Vec::new();
                    for (i, chunk) in snapshot[start..end].chunks(REFILTER_STRIDE).enumerate() {
                        if cancel.load(Ordering::Relaxed) {
                            break;
                        }
                        let first = start + i * REFILTER_STRIDE;
                        for (j, item) in chunk.iter().enumerate() {
                            let pass = item.as_ref().is_none_or(|ex| {
                                exchange_passes(filter.as_ref(), conn, ex, None, &clients)
                            });
                            if pass {
                                out.push(base + (first + j) as u64);
                            }
                        }
                        done.fetch_add(chunk.len(), Ordering::Relaxed);
                    }
                    out
                })
            })
            .collect();
        self.refiltering = Some(Refilter {
            filter,
            conn,
            end: base + total as u64,
            tail: Vec::new(),
            total,
            done,
            cancel,
            workers,
        });
        true
    }

    /// Whether a filter is being applied in the background, and how far it got.
    pub fn refilter_progress(&self) -> Option<RefilterProgress> {
        self.refiltering.as_ref().map(|r| RefilterProgress {
            text: r
                .filter
                .as_ref()
                .map(|f| f.text().to_string())
                .unwrap_or_default(),
            conn: r.conn,
            done: r.done.load(Ordering::Relaxed),
            total: r.total,
        })
    }

    /// Cancels the filter being applied in the background (the list stays as it is); what it
    /// was, if one was.
    pub fn cancel_refilter(&mut self) -> Option<RefilterProgress> {
        let progress = self.refilter_progress();
        self.refiltering = None;
        progress
    }

    /// Takes the result of the filter being applied in the background once its workers are
    /// done: it replaces the rows shown. True when it did.
    pub fn poll_refilter(&mut self) -> bool {
        if !self
            .refiltering
            .as_ref()
            .is_some_and(|r| r.workers.iter().all(JoinHandle::is_finished))
        {
            return false;
        }
        let Some(mut r) = self.refiltering.take() else {
            return false;
        };
        let mut visible = Blocks::new();
        for w in r.workers.drain(..) {
            // A worker that panicked passes nothing (the filter is the same code the UI runs).
            visible.extend(w.join().unwrap_or_default());
        }
        debug_assert!(visible.back().is_none_or(|s| *s < r.end));
        visible.extend(r.tail.drain(..));
        // Rows let go meanwhile are not shown.
        while visible.front().is_some_and(|s| *s < self.base) {
            visible.pop_front();
        }
        self.filter = r.filter.take();
        self.conn = r.conn;
        self.show(visible);
        true
    }

    /// Shows `visible` (sequence numbers, ascending), keeping the selected row selected, or the
    /// nearest one shown.
    fn show(&mut self, visible: Blocks<u64>) {
        let keep = self.selected_seq();
        self.visible = visible;
        self.selected = match keep {
            _ if self.visible.is_empty() => None,
            // The selected row, or the nearest one that passes.
            Some(seq) => Some(
                self.visible
                    .partition_point(|s| *s < seq)
                    .min(self.visible.len() - 1),
            ),
            None => Some(self.visible.len() - 1),
        };
        self.follow_tail = self.selected.is_none_or(|i| i + 1 == self.visible.len());
    }

    fn selected_seq(&self) -> Option<u64> {
        self.selected.and_then(|i| self.visible.get(i).copied())
    }

    fn entry(&self, seq: u64) -> Option<&Row> {
        seq.checked_sub(self.base)
            .and_then(|i| self.entries.get(i as usize))
    }

    /// The selected exchange, if the selected row is one.
    pub fn selected_exchange(&self) -> Option<&Arc<Exchange>> {
        match self.selected_seq().and_then(|s| self.entry(s))? {
            Row::Exchange(ex) => Some(ex),
            Row::Marker(_) => None,
        }
    }

    fn select(&mut self, index: usize) {
        if self.visible.is_empty() {
            self.selected = None;
            return;
        }
        let last = self.visible.len() - 1;
        let index = index.min(last);
        self.selected = Some(index);
        self.follow_tail = index == last;
    }

    /// Moves the selection by `delta` rows; moving up stops following the tail, reaching the
    /// bottom resumes it.
    pub fn move_by(&mut self, delta: isize) {
        let cur = self.selected.unwrap_or(0) as isize;
        self.select((cur + delta).max(0) as usize);
    }

    /// Selects the newest row and follows the tail.
    pub fn to_end(&mut self) {
        self.select(usize::MAX);
        self.follow_tail = true;
    }

    /// Handles a key routed to the list.
    pub fn on_key(&mut self, key: KeyEvent) -> Outcome {
        let page = self.page.max(1) as isize;
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::PageDown => self.move_by(page),
            KeyCode::PageUp => self.move_by(-page),
            KeyCode::Char('d') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.move_by(page / 2)
            }
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.move_by(-page / 2)
            }
            KeyCode::Home | KeyCode::Char('g') => self.select(0),
            KeyCode::End | KeyCode::Char('G') => self.to_end(),
            _ => return Outcome::Ignored,
        }
        Outcome::Consumed
    }

    /// Selects the row at a screen line (mouse click); true when a row was there.
    pub fn click(&mut self, row: u16) -> bool {
        // Border and header take the first two lines.
        let Some(line) = row.checked_sub(self.area.y + 2) else {
            return false;
        };
        let index = self.offset + line as usize;
        if index < self.visible.len() && line < self.area.height.saturating_sub(3) {
            self.select(index);
            true
        } else {
            false
        }
    }

    /// Draws the list.
    pub fn draw(
        &mut self,
        f: &mut Frame,
        area: Rect,
        focused: bool,
        theme: &Theme,
        clients: &HashMap<u64, ConnInfo>,
        paused: Option<usize>,
    ) {
        self.area = area;
        let height = area.height.saturating_sub(3) as usize;
        self.page = height;
        if let Some(sel) = self.selected {
            self.offset = scroll_to(self.offset, sel, height);
        }
        // No empty rows below the last one while rows above are hidden.
        self.offset = self.offset.min(self.visible.len().saturating_sub(height));
        if self.follow_tail {
            self.offset = self.visible.len().saturating_sub(height);
        }
        let mut title = vec![Span::styled(
            {
                let (held, shown) = self.counts();
                format!(" Exchanges {shown}/{held} ")
            },
            theme.title,
        )];
        let state = match (paused, self.follow_tail) {
            (Some(n), _) => format!("PAUSED, {n} new "),
            (None, true) => "following ".to_string(),
            (None, false) => "scrolled (G: follow) ".to_string(),
        };
        title.push(Span::styled(state, theme.dim));
        if let Some(c) = self.conn {
            title.push(Span::styled(format!("conn={c} "), theme.header));
        }
        if let Some(flt) = &self.filter {
            title.push(Span::styled(
                format!("filter: {} ", flt.text()),
                theme.header,
            ));
        }
        let block = pane(Line::from(title), focused, theme);
        let inner = block.inner(area);
        f.render_widget(block, area);
        let cols = columns(inner.width);
        // A one-column gutter marks the selected row.
        let fixed: usize = 1 + cols.iter().map(|(_, w)| w + 1).sum::<usize>();
        let summary_w = (inner.width as usize).saturating_sub(fixed).max(8);
        if self.visible.is_empty() {
            let msg = if self.entries.is_empty() {
                "No exchanges yet: point a Kafka client at the broker."
            } else {
                "No row passes the filter."
            };
            f.render_widget(Paragraph::new(msg).style(theme.dim), inner);
            return;
        }
        let mut header = String::from(" ");
        for (t, w) in &cols {
            header.push_str(&cell(t, *w));
            header.push(' ');
        }
        header.push_str("summary");
        let mut lines = vec![Line::styled(header, theme.header)];
        let mut last = std::mem::take(&mut self.drawn);
        let mut drawn = HashMap::with_capacity(height);
        let shown = self.visible.iter_from(self.offset);
        for (i, seq) in shown.take(height).enumerate() {
            let line = match self.entry(*seq) {
                Some(Row::Exchange(ex)) => {
                    let (summary, class) =
                        last.remove(seq)
                            .unwrap_or_else(|| match Entry::exchange(ex.clone()).0 {
                                Entry::Exchange { summary, class, .. } => (summary, class),
                                Entry::Marker(_) => unreachable!("an exchange's entry"),
                            });
                    let line = exchange_line(ex, &summary, class, &cols, summary_w, theme, clients);
                    drawn.insert(*seq, (summary, class));
                    line
                }
                Some(Row::Marker(m)) => Line::styled(
                    super::fit(
                        &format!("── {} {} ", clock_ms(m.at), m.text),
                        inner.width as usize,
                    ),
                    theme.marker,
                ),
                None => Line::default(),
            };
            lines.push(if self.selected == Some(self.offset + i) {
                // A mark that reads without colour too (NO_COLOR, text captures).
                let mut line = line.style(theme.selected);
                line.spans.insert(0, Span::raw("▶"));
                line
            } else {
                let mut line = line;
                line.spans.insert(0, Span::raw(" "));
                line
            });
        }
        self.drawn = drawn;
        f.render_widget(Paragraph::new(lines), inner);
    }
}

fn exchange_line<'a>(
    ex: &Exchange,
    summary: &str,
    class: RowClass,
    cols: &[(&str, usize)],
    summary_w: usize,
    theme: &Theme,
    clients: &HashMap<u64, ConnInfo>,
) -> Line<'a> {
    let mut cells: Vec<String> = Vec::with_capacity(cols.len() + 1);
    for (name, _) in cols {
        cells.push(match *name {
            "#" => ex.id.to_string(),
            "time" => clock_ms(ex.request_at),
            "conn" => ex.conn.to_string(),
            "client" => ex
                .client_id()
                .map(str::to_string)
                .unwrap_or_else(|| "-".into()),
            "api" => ex.api_label(),
            "corr" => ex.correlation_id.to_string(),
            "latency" => ex
                .latency_micros()
                .map(millis)
                .unwrap_or_else(|| "-".into()),
            "size" => format!(
                "{}/{}",
                if ex.request_seen() {
                    ex.request().len().to_string()
                } else {
                    "-".into()
                },
                ex.response()
                    .as_ref()
                    .map(|r| r.len().to_string())
                    .unwrap_or_else(|| "-".into())
            ),
            _ => String::new(),
        });
    }
    let unhealthy = clients
        .get(&ex.conn)
        .is_some_and(|c| c.health != Health::Healthy);
    let mut summary = super::fit(summary, summary_w);
    if unhealthy {
        let h = clients.get(&ex.conn).map(|c| c.health.word()).unwrap_or("");
        summary = format!("{h}: {summary}");
    }
    let mut text = String::new();
    for (c, (_, w)) in cells.iter().zip(cols) {
        text.push_str(&cell(c, *w));
        text.push(' ');
    }
    text.push_str(&summary);
    let style: Style = match class {
        RowClass::Malformed => theme.malformed,
        RowClass::Error => theme.error,
        RowClass::Pending => theme.pending,
        RowClass::Ok if unhealthy => theme.stalled,
        RowClass::Ok => theme.base,
    };
    let style = if unhealthy && class != RowClass::Malformed {
        theme.stalled
    } else {
        style
    };
    Line::styled(text, style)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(id: u64, conn: u64) -> Arc<Exchange> {
        let peer = "127.0.0.1:1".parse().unwrap();
        let mut ex = Exchange::new(
            conn,
            crate::capture::Endpoints::of(peer),
            0,
            Status::Unanswered,
        );
        ex.id = id;
        Arc::new(ex)
    }

    fn shown_ids(l: &ExchangeList) -> Vec<u64> {
        l.visible
            .iter()
            .filter_map(|s| match l.entry(*s) {
                Some(Row::Exchange(ex)) => Some(ex.id),
                _ => None,
            })
            .collect()
    }

    /// Takes the background filter's result, waiting for its workers.
    fn finish(l: &mut ExchangeList) {
        for _ in 0..3000 {
            if l.poll_refilter() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the filter never finished");
    }

    /// A filter applied in the background leaves the rows shown as they are until its result
    /// is taken, and checks rows that arrive meanwhile as they come.
    #[test]
    fn a_background_filter_checks_rows_arriving_meanwhile() {
        let clients = HashMap::new();
        let mut l = ExchangeList::new(100);
        l.inline_max = 0;
        l.push((1..=10).map(|i| ex(i, i % 2)).collect(), vec![], &clients);
        let f = crate::filter::parse("id > 4").unwrap();
        assert!(l.refilter(Some(f), Some(1), &clients));
        assert_eq!(l.counts(), (10, 10));
        assert!(l.filter().is_none());
        l.push(vec![ex(11, 1), ex(12, 0)], vec![], &clients);
        assert_eq!(l.counts(), (12, 12), "unfiltered until the result is taken");
        finish(&mut l);
        assert_eq!(shown_ids(&l), vec![5, 7, 9, 11]);
        assert_eq!(l.filter().map(Filter::text), Some("id > 4"));
        assert!(l.refilter_progress().is_none());
        // Showing every row needs no check: at once, whatever the size.
        assert!(!l.refilter(None, None, &clients));
        assert_eq!(l.counts(), (12, 12));
    }

    /// A cancelled filter changes nothing; a new one replaces the one being applied.
    #[test]
    fn a_cancelled_or_replaced_background_filter_changes_nothing() {
        let clients = HashMap::new();
        let mut l = ExchangeList::new(100);
        l.inline_max = 0;
        l.push((1..=10).map(|i| ex(i, i % 2)).collect(), vec![], &clients);
        assert!(l.refilter(None, Some(0), &clients));
        let p = l.cancel_refilter().unwrap();
        assert_eq!((p.what(), p.total), ("conn=0".to_string(), 10));
        assert!(!l.poll_refilter());
        assert_eq!(l.counts(), (10, 10));
        assert!(l.refilter(None, Some(0), &clients));
        assert!(l.refilter(None, Some(1), &clients));
        finish(&mut l);
        assert_eq!(shown_ids(&l), vec![1, 3, 5, 7, 9]);
    }
}
