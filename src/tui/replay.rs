//! The replay view (`chronik-tui replay CAPTURE` in a terminal): the capture's exchanges as
//! they are replayed, and for the selected one the recorded and the live exchange side by side,
//! in a tree and a hex view each, every differing field marked (`≠` changed, `+` added, `−`
//! missing, `↔` shifted; ignored ones dimmed). `n`/`N` go to the next/previous exchange, `d`/`D`
//! to the next/previous difference, Tab moves between the panes.

use std::sync::Arc;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::components::field_tree::{FieldTree, Mark, Side};
use super::components::hex_view::HexView;
use super::components::{cell, hint, pane, scroll_to, Outcome};
use super::theme::Theme;
use crate::capture::{Exchange, Status};
use crate::protocol::diff::{Change, Difference};
use crate::replay::report::Tally;
use crate::replay::{Outcome as Result, Replayed};

/// Which pane has the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    List,
    Recorded,
    Live,
    RecordedHex,
    LiveHex,
}

const PANES: [Pane; 5] = [
    Pane::List,
    Pane::Recorded,
    Pane::Live,
    Pane::RecordedHex,
    Pane::LiveHex,
];

/// The replay view's state.
pub struct ReplayView {
    /// Results so far, in the capture's order.
    rows: Vec<Replayed>,
    /// The capture's index of the selected exchange.
    selected: Option<usize>,
    offset: usize,
    /// Which of the selected exchange's counted differences `d` went to last.
    difference: Option<usize>,
    recorded: FieldTree,
    live: FieldTree,
    recorded_hex: HexView,
    live_hex: HexView,
    pub focus: Pane,
    against: String,
    total: usize,
    tally: Tally,
    message: Option<String>,
    theme: Theme,
    pub quit: bool,
    /// Where results come from while the view runs.
    results: Option<tokio::sync::mpsc::UnboundedReceiver<Replayed>>,
}

impl ReplayView {
    /// A view of a replay against `against` of a capture of `total` exchanges; `notes` (what
    /// setting up did) are shown on the bottom line until a key is pressed.
    pub fn new(against: String, total: usize, notes: Vec<String>, theme: Theme) -> ReplayView {
        let mut recorded = FieldTree::new();
        recorded.set_label("Recorded");
        let mut live = FieldTree::new();
        live.set_label("Live");
        ReplayView {
            rows: Vec::new(),
            selected: None,
            offset: 0,
            difference: None,
            recorded,
            live,
            recorded_hex: HexView::default(),
            live_hex: HexView::default(),
            focus: Pane::List,
            against,
            total,
            tally: Tally::default(),
            message: (!notes.is_empty()).then(|| notes.join("; ")),
            theme,
            quit: false,
            results: None,
        }
    }

    /// Counts over the exchanges replayed so far.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Whether every exchange of the capture has its result.
    pub fn finished(&self) -> bool {
        self.rows.len() >= self.total
    }

    /// Takes a result (in any order; rows stay in the capture's). The first one is selected.
    pub fn push(&mut self, r: Replayed) {
        self.tally.add(&r);
        let at = self.rows.partition_point(|x| x.index < r.index);
        self.rows.insert(at, r);
        if self.selected.is_none() {
            self.select_row(0);
        }
    }

    fn row(&self) -> Option<usize> {
        let sel = self.selected?;
        self.rows.iter().position(|r| r.index == sel)
    }

    /// The selected exchange's result.
    pub fn current(&self) -> Option<&Replayed> {
        self.row().map(|i| &self.rows[i])
    }

    /// Shows row `i`: both exchanges in their trees, their differences marked, the first one
    /// selected.
    fn select_row(&mut self, i: usize) {
        let Some(r) = self.rows.get(i) else { return };
        self.selected = Some(r.index);
        self.difference = None;
        let (recorded, live) = (r.exchange.clone(), Arc::new(live_exchange(r)));
        self.recorded.set_exchange(Some(recorded));
        self.live.set_exchange(Some(live));
        self.mark();
        if self.counted().is_empty() {
            self.recorded.select_side(Side::Response);
            self.live.select_side(Side::Response);
            self.follow_hex();
        } else {
            self.go_to_difference(0);
        }
    }

    /// The selected exchange's differences that count.
    fn counted(&self) -> Vec<Difference> {
        match self.current().map(|r| &r.outcome) {
            Some(Result::Compared(d)) => d.counted().cloned().collect(),
            _ => Vec::new(),
        }
    }

    fn mark_of(&self, d: &Difference) -> Mark {
        let t = &self.theme;
        let (sign, style) = match d.change {
            Change::Changed => ("≠", t.diff_changed),
            Change::Added => ("+", t.diff_added),
            Change::Missing => ("−", t.diff_missing),
            Change::Shifted => ("↔", t.diff_shifted),
        };
        Mark {
            sign,
            style: if d.ignored { t.dim } else { style },
        }
    }

    /// Marks the differing fields of the selected exchange in both trees.
    fn mark(&mut self) {
        let Some(Result::Compared(d)) = self.current().map(|r| r.outcome.clone()) else {
            return;
        };
        let (mut old, mut new) = (Vec::new(), Vec::new());
        for x in &d.differences {
            let m = self.mark_of(x);
            if let Some(l) = &x.old {
                old.push((Side::Response, l.at.clone(), m.clone()));
            }
            if let Some(l) = &x.new {
                new.push((Side::Response, l.at.clone(), m));
            }
        }
        self.recorded.set_marks(old);
        self.live.set_marks(new);
    }

    /// Hex spans of the differing fields on one side, in the buffer its hex view shows.
    fn hex_marks(&self, recorded: bool) -> Vec<(usize, usize, Style)> {
        let Some(Result::Compared(d)) = self.current().map(|r| &r.outcome) else {
            return Vec::new();
        };
        let buffer = if recorded {
            self.recorded_hex.buffer
        } else {
            self.live_hex.buffer
        };
        d.differences
            .iter()
            .filter_map(|x| {
                let l = if recorded { &x.old } else { &x.new };
                let l = l.as_ref().filter(|l| l.buffer == buffer)?;
                Some((l.offset as usize, l.len as usize, self.mark_of(x).style))
            })
            .collect()
    }

    /// Selects the `k`-th counted difference of the selected exchange in both trees.
    fn go_to_difference(&mut self, k: usize) {
        let Some(d) = self.counted().get(k).cloned() else {
            return;
        };
        self.difference = Some(k);
        if let Some(l) = &d.old {
            self.recorded.reveal(Side::Response, &l.at);
        }
        if let Some(l) = &d.new {
            self.live.reveal(Side::Response, &l.at);
        }
        // A field on one side only: the other shows where it would be (its parent).
        if d.old.is_none() {
            self.sync(true);
        }
        if d.new.is_none() {
            self.sync(false);
        }
        self.follow_hex();
    }

    /// The next (or previous) difference, across exchanges; an exchange that differs without
    /// fields to compare (no live response) counts as one.
    fn step_difference(&mut self, forward: bool) {
        let n = self.rows.len();
        let Some(row) = self.row() else { return };
        let here = self.counted().len();
        match (forward, self.difference) {
            (true, Some(k)) if k + 1 < here => return self.go_to_difference(k + 1),
            (true, None) if here > 0 => return self.go_to_difference(0),
            (false, Some(k)) if k > 0 => return self.go_to_difference(k - 1),
            _ => {}
        }
        for step in 1..n {
            let i = if forward {
                row + step
            } else {
                (row + n - step) % n
            };
            if forward && i >= n {
                break;
            }
            if !forward && i > row {
                break;
            }
            if differs(&self.rows[i]) {
                self.select_row(i);
                let last = self.counted().len();
                if !forward && last > 0 {
                    self.go_to_difference(last - 1);
                }
                return;
            }
        }
        self.message = Some(if forward {
            "no difference after this one".into()
        } else {
            "no difference before this one".into()
        });
    }

    /// Puts the other tree's selection on the field that pairs with this tree's: the
    /// difference's other side, else the same path when the same field is there, else the
    /// nearest parent that is.
    fn sync(&mut self, from_live: bool) {
        let (from, to) = if from_live {
            (&self.live, &self.recorded)
        } else {
            (&self.recorded, &self.live)
        };
        let Some((side, path)) = from.selected_path() else {
            return;
        };
        let paired = match self.current().map(|r| &r.outcome) {
            Some(Result::Compared(d)) if side == Side::Response => {
                d.differences.iter().find_map(|x| {
                    let (here, there) = if from_live {
                        (&x.new, &x.old)
                    } else {
                        (&x.old, &x.new)
                    };
                    (here.as_ref()?.at == path).then(|| there.as_ref().map(|l| l.at.clone()))?
                })
            }
            _ => None,
        };
        let id = from.field(side, &path).map(|f| f.id);
        let target = paired.or_else(|| {
            (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| to.field(side, p).map(|f| f.id) == from.field(side, p).map(|f| f.id))
                .filter(|p| p.len() == path.len() || id.is_some())
        });
        if let Some(p) = target {
            if from_live {
                self.recorded.reveal(side, &p);
            } else {
                self.live.reveal(side, &p);
            }
        }
    }

    fn follow_hex(&mut self) {
        self.recorded_hex.follow(self.recorded.selected_span());
        self.live_hex.follow(self.live.selected_span());
    }

    pub fn handle_event(&mut self, event: Event) {
        if let Event::Key(k) = event {
            if k.kind != KeyEventKind::Release {
                self.on_key(k);
            }
        }
    }

    pub fn on_key(&mut self, key: KeyEvent) {
        self.message = None;
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return;
        }
        match key.code {
            KeyCode::Char('q') => return self.quit = true,
            KeyCode::Char('n') => return self.move_row(1),
            KeyCode::Char('N') | KeyCode::Char('p') => return self.move_row(-1),
            KeyCode::Char('d') => return self.step_difference(true),
            KeyCode::Char('D') => return self.step_difference(false),
            KeyCode::Tab | KeyCode::BackTab => {
                let delta = if key.code == KeyCode::Tab { 1 } else { -1 };
                let i = PANES.iter().position(|p| *p == self.focus).unwrap_or(0) as i32;
                self.focus = PANES[(i + delta).rem_euclid(PANES.len() as i32) as usize];
                return;
            }
            _ => {}
        }
        match self.focus {
            Pane::List => match key.code {
                KeyCode::Down | KeyCode::Char('j') => self.move_row(1),
                KeyCode::Up | KeyCode::Char('k') => self.move_row(-1),
                KeyCode::Home | KeyCode::Char('g') => self.select_row(0),
                KeyCode::End | KeyCode::Char('G') => {
                    self.select_row(self.rows.len().saturating_sub(1))
                }
                KeyCode::Enter => self.focus = Pane::Recorded,
                _ => {}
            },
            Pane::Recorded | Pane::Live => {
                let live = self.focus == Pane::Live;
                let tree = if live {
                    &mut self.live
                } else {
                    &mut self.recorded
                };
                if tree.on_key(key) == Outcome::Consumed {
                    self.sync(live);
                    self.follow_hex();
                }
            }
            Pane::RecordedHex | Pane::LiveHex => {
                let live = self.focus == Pane::LiveHex;
                let (hex, tree) = if live {
                    (&mut self.live_hex, &mut self.live)
                } else {
                    (&mut self.recorded_hex, &mut self.recorded)
                };
                if hex.on_key(key) == Outcome::Consumed {
                    if let Some(side) = hex.side {
                        tree.select_byte(side, hex.buffer, hex.cursor);
                    }
                    self.sync(live);
                    let other = if live {
                        self.recorded.selected_span()
                    } else {
                        self.live.selected_span()
                    };
                    if live {
                        self.recorded_hex.follow(other);
                    } else {
                        self.live_hex.follow(other);
                    }
                }
            }
        }
    }

    fn move_row(&mut self, delta: isize) {
        let Some(row) = self.row() else { return };
        let last = self.rows.len().saturating_sub(1) as isize;
        let next = (row as isize + delta).clamp(0, last) as usize;
        if next != row {
            self.select_row(next);
        }
    }

    /// Draws the whole screen.
    pub fn draw(&mut self, f: &mut Frame) {
        let area = f.area();
        // The list as tall as its rows (with the capture's total in mind), at most 30%.
        let rows = self.total.max(self.rows.len()) as u16 + 2;
        let list_height = rows.min(area.height * 3 / 10).max(4);
        let [list, detail, bottom] = Layout::vertical([
            Constraint::Length(list_height),
            Constraint::Min(8),
            Constraint::Length(1),
        ])
        .areas(area);
        let [trees, hexes] =
            Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(detail);
        self.draw_list(f, list);
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(trees);
        self.recorded
            .draw(f, left, self.focus == Pane::Recorded, &self.theme);
        self.live
            .draw(f, right, self.focus == Pane::Live, &self.theme);
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(hexes);
        let (old_marks, new_marks) = (self.hex_marks(true), self.hex_marks(false));
        self.recorded_hex.draw_for(
            f,
            left,
            self.focus == Pane::RecordedHex,
            &self.theme,
            &self.recorded,
            &old_marks,
        );
        self.live_hex.draw_for(
            f,
            right,
            self.focus == Pane::LiveHex,
            &self.theme,
            &self.live,
            &new_marks,
        );
        self.draw_bottom(f, bottom);
    }

    fn draw_list(&mut self, f: &mut Frame, area: Rect) {
        let t = &self.tally;
        let progress = if self.finished() {
            String::new()
        } else {
            format!(" {}/{} so far,", self.rows.len(), self.total)
        };
        let title = format!(
            " Replay against {}:{progress} {} same, {} with differences ",
            self.against, t.same, t.differ
        );
        let block = pane(title, self.focus == Pane::List, &self.theme);
        let inner = block.inner(area);
        f.render_widget(block, area);
        let height = inner.height as usize;
        let row = self.row().unwrap_or(0);
        self.offset = scroll_to(self.offset, row, height);
        let width = inner.width as usize;
        let lines: Vec<Line> = self
            .rows
            .iter()
            .enumerate()
            .skip(self.offset)
            .take(height)
            .map(|(i, r)| {
                let ex = &r.exchange;
                let head = format!(
                    "{}{} {} {} {} ",
                    if i == row { "▶" } else { " " },
                    cell(&format!("#{}", ex.id), 6),
                    cell(&format!("conn={}", ex.conn), 8),
                    cell(&ex.api_label(), 18),
                    cell(&format!("corr={}", ex.correlation_id), 10),
                );
                let (what, style) = summary(r, &self.theme);
                let text = cell(&format!("{head}{what}"), width);
                let style = if i == row { self.theme.selected } else { style };
                Line::from(Span::styled(text, style))
            })
            .collect();
        f.render_widget(Paragraph::new(lines), inner);
    }

    fn draw_bottom(&self, f: &mut Frame, area: Rect) {
        if let Some(m) = &self.message {
            f.render_widget(
                Paragraph::new(m.as_str()).style(self.theme.status_bar),
                area,
            );
            return;
        }
        let mut spans = Vec::new();
        for (k, what) in [
            ("n/N", "next/previous exchange"),
            ("d/D", "next/previous difference"),
            ("Tab", "pane"),
            ("q", "quit"),
        ] {
            spans.extend(hint(k, what, &self.theme));
        }
        spans.push(Span::styled(
            "≠ changed  + added  − missing  ↔ shifted",
            self.theme.dim,
        ));
        f.render_widget(Paragraph::new(Line::from(spans)), area);
    }
}

/// Whether a result is a difference that counts.
fn differs(r: &Replayed) -> bool {
    match &r.outcome {
        Result::Compared(d) => !d.is_same(),
        Result::Differs { .. } => true,
        _ => false,
    }
}

/// The list's text for a result, and its style.
fn summary(r: &Replayed, theme: &Theme) -> (String, Style) {
    match &r.outcome {
        Result::Compared(d) => {
            let n = d.counted().count();
            let ignored = d.differences.len() - n;
            let ignored = if ignored > 0 {
                format!(" ({ignored} ignored)")
            } else {
                String::new()
            };
            let decode = if d.decode.is_some() {
                ", decoding differs"
            } else {
                ""
            };
            if d.is_same() {
                (format!("same{ignored}"), theme.ok)
            } else {
                let s = if n == 1 { "" } else { "s" };
                (format!("{n} difference{s}{decode}{ignored}"), theme.error)
            }
        }
        Result::Alike(how) => (format!("same ({how})"), theme.ok),
        Result::Differs { recorded, live } => {
            (format!("recorded: {recorded}; live: {live}"), theme.error)
        }
        Result::Skipped(why) => (format!("not compared: {why}"), theme.dim),
    }
}

/// The live side of a result as an exchange: the request as sent, the live response.
fn live_exchange(r: &Replayed) -> Exchange {
    let ex = &r.exchange;
    let status = match (&r.live, &ex.status) {
        (Some(_), _) => Status::Answered,
        (None, Status::NoResponse) => Status::NoResponse,
        (None, _) => Status::Unanswered,
    };
    let mut live = (**ex).clone();
    live.set_frames(
        r.sent.clone().unwrap_or_else(|| ex.request().to_vec()),
        r.live.clone(),
    );
    live.set_response_at(None);
    live.set_placement(None);
    live.set_notes(Vec::new());
    live.status = status;
    live
}

impl super::Screen for ReplayView {
    fn draw(&mut self, f: &mut Frame) {
        ReplayView::draw(self, f)
    }
    fn handle_event(&mut self, event: Event) {
        ReplayView::handle_event(self, event)
    }
    /// Takes the results that came since the last tick.
    fn tick(&mut self) {
        let mut got = Vec::new();
        if let Some(rx) = &mut self.results {
            while let Ok(r) = rx.try_recv() {
                got.push(r);
            }
        }
        for r in got {
            self.push(r);
        }
    }
    fn wants_to_quit(&self) -> bool {
        self.quit
    }
}

/// Runs the view until the user quits (or the process is told to stop), taking results as they
/// come; returns it, for the summary.
pub async fn run(
    mut view: ReplayView,
    results: tokio::sync::mpsc::UnboundedReceiver<Replayed>,
) -> anyhow::Result<ReplayView> {
    view.results = Some(results);
    super::drive(&mut view).await?;
    view.results = None;
    Ok(view)
}
