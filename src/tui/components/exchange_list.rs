//! The exchange list: one row per exchange (and a row per marker), newest at the bottom,
//! following the tail until the user scrolls up. Rows are sampled from the store by the app's
//! tick; the broker never waits on the list.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

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

/// One row.
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
        if let Some(p) = &ex.placement {
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

/// The list's state.
pub struct ExchangeList {
    entries: VecDeque<Entry>,
    /// Sequence number of `entries[0]`.
    base: u64,
    /// Sequence numbers of the rows shown (filter and connection applied), ascending.
    visible: VecDeque<u64>,
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
            entries: VecDeque::new(),
            base: 0,
            visible: VecDeque::new(),
            selected: None,
            offset: 0,
            markers: 0,
            follow_tail: true,
            conn: None,
            filter: None,
            cap: cap.max(1),
            page: 10,
            area: Rect::default(),
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
        entry: &Entry,
        dissected: Option<&Dissected>,
        clients: &HashMap<u64, ConnInfo>,
    ) -> bool {
        match entry {
            Entry::Marker(_) => true,
            Entry::Exchange { ex, .. } => {
                if self.conn.is_some_and(|c| c != ex.conn) {
                    return false;
                }
                let Some(filter) = &self.filter else {
                    return true;
                };
                let info = clients.get(&ex.conn);
                let software = info.and_then(ConnInfo::software);
                let health = info.map(|i| i.health.word());
                let owned;
                let dissected = match dissected {
                    Some(d) => Some(d),
                    None if filter.needs_dissection() => {
                        owned = ex.dissect();
                        Some(&owned)
                    }
                    None => None,
                };
                filter.matches(&Subject {
                    exchange: ex,
                    dissected,
                    software: software.as_deref(),
                    health,
                })
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
                self.append(Entry::Marker(m), None, clients);
            }
            let (entry, dissected) = Entry::exchange(ex);
            self.append(entry, Some(&dissected), clients);
        }
        for m in markers {
            self.append(Entry::Marker(m), None, clients);
        }
        self.trim();
        if self.follow_tail && !self.visible.is_empty() {
            self.selected = Some(self.visible.len() - 1);
        }
    }

    fn append(
        &mut self,
        entry: Entry,
        dissected: Option<&Dissected>,
        clients: &HashMap<u64, ConnInfo>,
    ) {
        let seq = self.base + self.entries.len() as u64;
        if matches!(entry, Entry::Marker(_)) {
            self.markers += 1;
        }
        if self.passes(&entry, dissected, clients) {
            self.visible.push_back(seq);
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
                Entry::Exchange { ex, .. } => ex.id >= id,
                Entry::Marker(m) => m.after_exchange + 1 >= id,
            })
            .unwrap_or(self.entries.len());
        if drop > 0 {
            self.drop_front(drop);
        }
    }

    /// Drops the first `drop` rows held.
    fn drop_front(&mut self, drop: usize) {
        let gone_markers = self
            .entries
            .drain(..drop)
            .filter(|e| matches!(e, Entry::Marker(_)))
            .count();
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
    /// row held; keeps the selected exchange selected when it still passes.
    pub fn refilter(
        &mut self,
        filter: Option<Filter>,
        conn: Option<u64>,
        clients: &HashMap<u64, ConnInfo>,
    ) {
        let keep = self.selected_seq();
        self.filter = filter;
        self.conn = conn;
        let mut visible = VecDeque::new();
        for (i, e) in self.entries.iter().enumerate() {
            if self.passes(e, None, clients) {
                visible.push_back(self.base + i as u64);
            }
        }
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

    fn entry(&self, seq: u64) -> Option<&Entry> {
        seq.checked_sub(self.base)
            .and_then(|i| self.entries.get(i as usize))
    }

    /// The selected row.
    pub fn selected(&self) -> Option<&Entry> {
        self.selected_seq().and_then(|s| self.entry(s))
    }

    /// The selected exchange, if the selected row is one.
    pub fn selected_exchange(&self) -> Option<&Arc<Exchange>> {
        match self.selected()? {
            Entry::Exchange { ex, .. } => Some(ex),
            Entry::Marker(_) => None,
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
        for (i, seq) in self
            .visible
            .iter()
            .skip(self.offset)
            .take(height)
            .enumerate()
        {
            let line = match self.entry(*seq) {
                Some(Entry::Exchange { ex, summary, class }) => {
                    exchange_line(ex, summary, *class, &cols, summary_w, theme, clients)
                }
                Some(Entry::Marker(m)) => Line::styled(
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
            "client" => ex.client_id.clone().unwrap_or_else(|| "-".into()),
            "api" => ex.api_label(),
            "corr" => ex.correlation_id.to_string(),
            "latency" => ex
                .latency_micros()
                .map(millis)
                .unwrap_or_else(|| "-".into()),
            "size" => format!(
                "{}/{}",
                if ex.request_seen() {
                    ex.request.len().to_string()
                } else {
                    "-".into()
                },
                ex.response
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
