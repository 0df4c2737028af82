//! The field tree of the selected exchange: request and response, expandable, down to each
//! record of a record batch. Values are shown in their most useful form (API and error names,
//! dates, text or hex); each line knows the bytes it came from, which the hex view highlights.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{date_ms, pane, scroll_to, Outcome};
use crate::capture::Exchange;
use crate::protocol::errors::error_name;
use crate::protocol::lint::{Finding, Level, Side as LintSide};
use crate::protocol::registry::{self, FieldId};
use crate::protocol::tree::BufferId;
use crate::protocol::{Dissection, Field, Value};
use crate::tui::theme::Theme;

/// Which frame of the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Request,
    Response,
}

/// The bytes a line stands for: which frame, which buffer in it, where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSpan {
    pub side: Side,
    pub buffer: BufferId,
    pub offset: usize,
    pub len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LineKind {
    /// A field, by its path of child indices from the side's root (empty: the root).
    Field {
        path: Vec<u32>,
        has_children: bool,
        expanded: bool,
    },
    /// Where decoding failed.
    DecodeError,
    /// A lint finding on the side's frame, by index into the tree's findings.
    Finding(usize),
    /// A side with no frame (no response yet, acks=0, a request the capture does not hold).
    Absent(String),
}

#[derive(Debug, Clone)]
struct TreeLine {
    side: Side,
    depth: u16,
    kind: LineKind,
}

/// A field a view wants to stand out (a replay's difference): a sign before its name, which
/// reads without colour, and a style.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub sign: &'static str,
    pub style: Style,
}

/// The tree pane's state.
pub struct FieldTree {
    exchange: Option<Arc<Exchange>>,
    request: Option<Dissection>,
    response: Option<Dissection>,
    lines: Vec<TreeLine>,
    selected: usize,
    offset: usize,
    /// Expanded or collapsed by the user, by registry field (as Wireshark keeps subtrees open
    /// across packets); fields not in here are open down to depth 1.
    open: HashMap<FieldId, bool>,
    page: usize,
    /// Marked fields, by side and path, and the groups that hold one.
    marks: HashMap<(Side, Vec<u32>), Mark>,
    holding_marks: HashSet<(Side, Vec<u32>)>,
    /// What the lint names wrong with the exchange's frames, and the fields whose bytes a
    /// finding names exactly.
    findings: Vec<Finding>,
    lint_fields: HashMap<(Side, Vec<u32>), Level>,
    /// The pane's title before the selected field's name.
    label: &'static str,
    /// The area drawn last (for the mouse).
    pub area: Rect,
}

impl Default for FieldTree {
    fn default() -> Self {
        FieldTree::new()
    }
}

impl FieldTree {
    pub fn new() -> FieldTree {
        FieldTree {
            exchange: None,
            request: None,
            response: None,
            lines: Vec::new(),
            selected: 0,
            offset: 0,
            open: HashMap::new(),
            page: 10,
            marks: HashMap::new(),
            holding_marks: HashSet::new(),
            findings: Vec::new(),
            lint_fields: HashMap::new(),
            label: "Fields",
            area: Rect::default(),
        }
    }

    /// The pane's title (`Fields` unless set), before the selected field's name.
    pub fn set_label(&mut self, label: &'static str) {
        self.label = label;
    }

    /// Marks fields (replacing the marks there were); the groups holding one get a sign too,
    /// so a closed group shows that something inside it stands out.
    pub fn set_marks(&mut self, marks: Vec<(Side, Vec<u32>, Mark)>) {
        self.holding_marks.clear();
        for (side, path, _) in &marks {
            for n in 0..path.len() {
                self.holding_marks.insert((*side, path[..n].to_vec()));
            }
        }
        self.marks = marks
            .into_iter()
            .map(|(side, path, m)| ((side, path), m))
            .collect();
    }

    /// The exchange shown.
    pub fn exchange(&self) -> Option<&Arc<Exchange>> {
        self.exchange.as_ref()
    }

    /// Shows an exchange (None: nothing). Keeps the same field selected when the new exchange
    /// has one of that name on the same side, as a person comparing rows expects.
    pub fn set_exchange(&mut self, ex: Option<Arc<Exchange>>) {
        if ex.as_ref().map(|e| e.id) == self.exchange.as_ref().map(|e| e.id) {
            return;
        }
        let keep = self.selected_field().map(|(side, f)| (side, f.id));
        self.marks.clear();
        self.holding_marks.clear();
        self.request = ex.as_ref().and_then(|e| e.dissect_request());
        self.response = ex.as_ref().and_then(|e| e.dissect_response());
        self.findings = ex.as_ref().map_or_else(Vec::new, |e| {
            crate::capture::lint::findings(e, self.request.as_ref(), self.response.as_ref())
        });
        self.exchange = ex;
        self.lint_fields.clear();
        for f in &self.findings {
            let side = side_of(f.side);
            let (start, len) = (f.start, f.end - f.start);
            if let Some(path) = self.find_path(side, |x| {
                x.buffer == 0 && x.offset == start && x.len == len && len > 0
            }) {
                let level = self.lint_fields.entry((side, path)).or_insert(f.level);
                *level = (*level).max(f.level);
            }
        }
        self.rebuild();
        // The first line of a frame there is (the response's, when the request was not seen).
        self.selected = self
            .lines
            .iter()
            .position(|l| !matches!(l.kind, LineKind::Absent(_)))
            .unwrap_or(0);
        self.offset = 0;
        if let Some((side, id)) = keep {
            if let Some(path) = self.find_path(side, |f| f.id == id) {
                self.reveal(side, &path);
            }
        }
    }

    /// What the lint names wrong with the exchange shown.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// The dissection of one side.
    pub fn dissection(&self, side: Side) -> Option<&Dissection> {
        match side {
            Side::Request => self.request.as_ref(),
            Side::Response => self.response.as_ref(),
        }
    }

    /// The raw bytes of a side's buffer (the frame, or a decompressed batch).
    pub fn bytes(&self, side: Side, buffer: BufferId) -> &[u8] {
        let Some(ex) = &self.exchange else {
            return &[];
        };
        let frame: &[u8] = match side {
            Side::Request => ex.request(),
            Side::Response => ex.response().unwrap_or(&[]),
        };
        match self.dissection(side) {
            Some(d) => d.buffer(frame, buffer),
            None => frame,
        }
    }

    /// The field at a path of child indices on a side.
    pub fn field(&self, side: Side, path: &[u32]) -> Option<&Field> {
        let mut f = &self.dissection(side)?.root;
        for i in path {
            f = f.children.get(*i as usize)?;
        }
        Some(f)
    }

    fn is_open(&self, f: &Field, depth: usize) -> bool {
        self.open.get(&f.id).copied().unwrap_or(depth <= 1)
    }

    fn rebuild(&mut self) {
        let mut lines = Vec::new();
        for side in [Side::Request, Side::Response] {
            match self.dissection(side) {
                None => {
                    if self.exchange.is_some() {
                        lines.push(TreeLine {
                            side,
                            depth: 0,
                            kind: LineKind::Absent(self.absent(side)),
                        });
                    }
                }
                Some(d) => {
                    let mut path = Vec::new();
                    let first = lines.len();
                    self.push_lines(side, &d.root, 0, &mut path, &mut lines);
                    // The findings right under the frame's title, where they are seen first.
                    let findings = (self.findings.iter().enumerate())
                        .filter(|(_, f)| side_of(f.side) == side)
                        .map(|(i, _)| TreeLine {
                            side,
                            depth: 1,
                            kind: LineKind::Finding(i),
                        });
                    lines.splice(first + 1..first + 1, findings);
                    if d.error.is_some() {
                        lines.push(TreeLine {
                            side,
                            depth: 1,
                            kind: LineKind::DecodeError,
                        });
                    }
                }
            }
        }
        self.lines = lines;
        self.selected = self.selected.min(self.lines.len().saturating_sub(1));
    }

    /// Why a side has no frame.
    fn absent(&self, side: Side) -> String {
        use crate::capture::Status;
        if side == Side::Request {
            return "not in the capture".into();
        }
        match self.exchange.as_ref().map(|e| &e.status) {
            Some(Status::NoResponse) => "no response (acks=0: none by protocol)".into(),
            Some(Status::Malformed { .. }) => {
                "no response (malformed request; connection closed)".into()
            }
            Some(Status::Refused { reason }) => {
                format!("no response (refused: {reason}; connection closed)")
            }
            _ => "no response (unanswered when the connection closed)".into(),
        }
    }

    fn push_lines(
        &self,
        side: Side,
        f: &Field,
        depth: usize,
        path: &mut Vec<u32>,
        out: &mut Vec<TreeLine>,
    ) {
        let has_children = !f.children.is_empty();
        let expanded = has_children && self.is_open(f, depth);
        out.push(TreeLine {
            side,
            depth: depth as u16,
            kind: LineKind::Field {
                path: path.clone(),
                has_children,
                expanded,
            },
        });
        if expanded {
            for (i, c) in f.children.iter().enumerate() {
                path.push(i as u32);
                self.push_lines(side, c, depth + 1, path, out);
                path.pop();
            }
        }
    }

    /// The first field (depth first) on a side that satisfies `pred`, as a path.
    fn find_path(&self, side: Side, pred: impl Fn(&Field) -> bool) -> Option<Vec<u32>> {
        fn walk(f: &Field, path: &mut Vec<u32>, pred: &dyn Fn(&Field) -> bool) -> bool {
            if pred(f) {
                return true;
            }
            for (i, c) in f.children.iter().enumerate() {
                path.push(i as u32);
                if walk(c, path, pred) {
                    return true;
                }
                path.pop();
            }
            false
        }
        let root = &self.dissection(side)?.root;
        let mut path = Vec::new();
        walk(root, &mut path, &pred).then_some(path)
    }

    /// The selected field's side and path of child indices.
    pub fn selected_path(&self) -> Option<(Side, Vec<u32>)> {
        match &self.lines.get(self.selected)?.kind {
            LineKind::Field { path, .. } => Some((self.lines[self.selected].side, path.clone())),
            _ => None,
        }
    }

    /// Opens every ancestor of a field and selects its line.
    pub fn reveal(&mut self, side: Side, path: &[u32]) {
        let mut ids = Vec::new();
        for n in 0..path.len() {
            if let Some(f) = self.field(side, &path[..n]) {
                ids.push(f.id);
            }
        }
        for id in ids {
            self.open.insert(id, true);
        }
        self.rebuild();
        if let Some(i) = self.lines.iter().position(|l| {
            l.side == side && matches!(&l.kind, LineKind::Field { path: p, .. } if p == path)
        }) {
            self.selected = i;
        }
    }

    /// Selects the innermost field whose bytes hold `pos` in a side's buffer (the hex view's
    /// cursor moved). True when one was found.
    pub fn select_byte(&mut self, side: Side, buffer: BufferId, pos: usize) -> bool {
        fn best(
            f: &Field,
            buffer: BufferId,
            pos: usize,
            path: &mut Vec<u32>,
            found: &mut Option<(u32, Vec<u32>)>,
        ) {
            let inside = f.buffer == buffer
                && (f.offset as usize) <= pos
                && pos < f.offset as usize + f.len as usize;
            if inside
                && found
                    .as_ref()
                    .is_none_or(|(len, p)| f.len < *len || (f.len == *len && path.len() > p.len()))
            {
                *found = Some((f.len, path.clone()));
            }
            for (i, c) in f.children.iter().enumerate() {
                path.push(i as u32);
                best(c, buffer, pos, path, found);
                path.pop();
            }
        }
        let Some(d) = self.dissection(side) else {
            return false;
        };
        let mut found = None;
        best(&d.root, buffer, pos, &mut Vec::new(), &mut found);
        match found {
            Some((_, path)) => {
                self.reveal(side, &path);
                true
            }
            None => false,
        }
    }

    /// The selected field and its side.
    pub fn selected_field(&self) -> Option<(Side, &Field)> {
        let line = self.lines.get(self.selected)?;
        match &line.kind {
            LineKind::Field { path, .. } => Some((line.side, self.field(line.side, path)?)),
            _ => None,
        }
    }

    /// The bytes of the selected line: a field's span, or the failing byte of a decode error.
    pub fn selected_span(&self) -> Option<ByteSpan> {
        let line = self.lines.get(self.selected)?;
        match &line.kind {
            LineKind::Field { path, .. } => {
                let f = self.field(line.side, path)?;
                Some(ByteSpan {
                    side: line.side,
                    buffer: f.buffer,
                    offset: f.offset as usize,
                    len: f.len as usize,
                })
            }
            LineKind::DecodeError => {
                let e = self.dissection(line.side)?.error.as_ref()?;
                Some(ByteSpan {
                    side: line.side,
                    buffer: 0,
                    offset: e.offset,
                    len: 1,
                })
            }
            LineKind::Finding(i) => {
                let f = self.findings.get(*i)?;
                Some(ByteSpan {
                    side: line.side,
                    buffer: 0,
                    offset: f.start as usize,
                    len: (f.end - f.start) as usize,
                })
            }
            LineKind::Absent(_) => None,
        }
    }

    /// The side of the selected line.
    pub fn selected_side(&self) -> Side {
        self.lines
            .get(self.selected)
            .map(|l| l.side)
            .unwrap_or(Side::Request)
    }

    /// Selects the root line of a side.
    pub fn select_side(&mut self, side: Side) {
        if let Some(i) = self.lines.iter().position(|l| l.side == side) {
            self.selected = i;
        }
    }

    /// Selects the first line whose field has this registry name (opening its ancestors).
    pub fn select_name(&mut self, name: &str) -> bool {
        for side in [Side::Request, Side::Response] {
            if let Some(path) = self.find_path(side, |f| f.name() == name) {
                self.reveal(side, &path);
                return true;
            }
        }
        false
    }

    /// Selects the first field on a side whose last name segment is `short`
    /// (`throttle_time_ms`), opening its ancestors.
    pub fn select_name_on(&mut self, side: Side, short: &str) -> bool {
        match self.find_path(side, |f| f.short_name() == short) {
            Some(path) => {
                self.reveal(side, &path);
                true
            }
            None => false,
        }
    }

    fn toggle(&mut self, open: Option<bool>) {
        let Some(line) = self.lines.get(self.selected).cloned() else {
            return;
        };
        if let LineKind::Field {
            path,
            has_children,
            expanded,
        } = &line.kind
        {
            if *has_children {
                let want = open.unwrap_or(!expanded);
                if want != *expanded {
                    if let Some(id) = self.field(line.side, path).map(|f| f.id) {
                        self.open.insert(id, want);
                        self.rebuild();
                    }
                    return;
                }
            }
            if open == Some(false) && !path.is_empty() {
                // Already closed (or a leaf): go to the parent.
                let parent = &path[..path.len() - 1];
                if let Some(i) = self.lines.iter().position(|l| {
                    l.side == line.side
                        && matches!(&l.kind, LineKind::Field { path: p, .. } if p == parent)
                }) {
                    self.selected = i;
                }
            }
        }
    }

    fn set_subtree(&mut self, open: bool) {
        let Some((_, f)) = self.selected_field() else {
            return;
        };
        let mut ids = Vec::new();
        f.walk(0, &mut |g, _| {
            if !g.children.is_empty() {
                ids.push(g.id);
            }
        });
        for id in ids {
            self.open.insert(id, open);
        }
        self.rebuild();
    }

    /// Handles a key routed to the tree.
    pub fn on_key(&mut self, key: KeyEvent) -> Outcome {
        let last = self.lines.len().saturating_sub(1);
        let page = self.page.max(1);
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => self.selected = (self.selected + 1).min(last),
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::PageDown => self.selected = (self.selected + page).min(last),
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(page),
            KeyCode::Home | KeyCode::Char('g') => self.selected = 0,
            KeyCode::End | KeyCode::Char('G') => self.selected = last,
            KeyCode::Enter | KeyCode::Char(' ') => self.toggle(None),
            KeyCode::Right | KeyCode::Char('l') => self.toggle(Some(true)),
            KeyCode::Left | KeyCode::Char('h') => self.toggle(Some(false)),
            KeyCode::Char('e') => self.set_subtree(true),
            KeyCode::Char('E') => self.set_subtree(false),
            _ => return Outcome::Ignored,
        }
        Outcome::Consumed
    }

    /// Selects the line at a screen row (mouse); a click on the arrow toggles.
    pub fn click(&mut self, column: u16, row: u16) -> bool {
        let Some(line) = row.checked_sub(self.area.y + 1) else {
            return false;
        };
        let index = self.offset + line as usize;
        if index >= self.lines.len() || line >= self.area.height.saturating_sub(2) {
            return false;
        }
        let was = self.selected;
        self.selected = index;
        let arrow_col = self.area.x + 2 + self.lines[index].depth * 2;
        if was == index || column == arrow_col {
            self.toggle(None);
        }
        true
    }

    /// Scrolls by mouse wheel.
    pub fn scroll(&mut self, delta: isize) {
        let last = self.lines.len().saturating_sub(1) as isize;
        self.selected = (self.selected as isize + delta).clamp(0, last.max(0)) as usize;
    }

    fn line_text(&self, line: &TreeLine, theme: &Theme) -> Line<'static> {
        let indent = "  ".repeat(line.depth as usize);
        match &line.kind {
            LineKind::Absent(why) => Line::from(vec![
                Span::styled(
                    match line.side {
                        Side::Request => "  Request: ",
                        Side::Response => "  Response: ",
                    },
                    theme.tree_name,
                ),
                Span::styled(why.clone(), theme.dim),
            ]),
            LineKind::DecodeError => {
                let e = self.dissection(line.side).and_then(|d| d.error.as_ref());
                let text = e
                    .map(|e| {
                        format!(
                            "✗ decoding stopped at byte {}: {} ({})",
                            e.offset, e.message, e.path
                        )
                    })
                    .unwrap_or_default();
                Line::from(vec![Span::raw(indent), Span::styled(text, theme.hex_error)])
            }
            LineKind::Finding(i) => {
                let Some(found) = self.findings.get(*i) else {
                    return Line::default();
                };
                let style = lint_style(found.level, theme);
                let at = if found.end > found.start {
                    format!("  @{}+{}", found.start, found.end - found.start)
                } else {
                    format!("  @{} (missing)", found.start)
                };
                let mut spans = vec![
                    Span::raw(indent),
                    Span::styled(
                        format!("⚑ {} {}: {}", found.level, found.code, found.message),
                        style,
                    ),
                    Span::styled(at, theme.dim),
                ];
                if let Some(fix) = &found.fix {
                    spans.push(Span::styled(format!("  {fix}"), theme.tree_note));
                }
                Line::from(spans)
            }
            LineKind::Field {
                path,
                has_children,
                expanded,
            } => {
                let Some(f) = self.field(line.side, path) else {
                    return Line::default();
                };
                let arrow = match (has_children, expanded) {
                    (false, _) => "  ",
                    (true, true) => "▾ ",
                    (true, false) => "▸ ",
                };
                let mut spans = vec![Span::raw(indent), Span::styled(arrow, theme.dim)];
                let key = (line.side, path.clone());
                let mark = self.marks.get(&key);
                if let Some(m) = mark {
                    spans.push(Span::styled(format!("{} ", m.sign), m.style));
                } else if let Some(level) = self.lint_fields.get(&key) {
                    spans.push(Span::styled("⚑ ", lint_style(*level, theme)));
                } else if self.holding_marks.contains(&key) {
                    spans.push(Span::styled("· ", theme.dim));
                }
                if path.is_empty() {
                    spans.push(Span::styled(self.root_title(line.side), theme.title));
                } else {
                    let name = match f.value {
                        Value::Element(i) => format!("{}[{i}]", f.short_name()),
                        _ => f.short_name().to_string(),
                    };
                    spans.push(Span::styled(
                        name,
                        mark.map_or(theme.tree_name, |m| m.style),
                    ));
                    let buf = self.bytes(line.side, f.buffer);
                    let value = value_text(f, buf);
                    if !value.is_empty() {
                        spans.push(Span::raw(": "));
                        spans.push(Span::styled(value, theme.tree_value));
                    }
                }
                let at = if f.buffer == 0 {
                    format!("  @{}+{}", f.offset, f.len)
                } else {
                    format!("  @{}+{} (decompressed)", f.offset, f.len)
                };
                spans.push(Span::styled(at, theme.dim));
                if let Some(n) = &f.note {
                    spans.push(Span::styled(format!("  {n}"), theme.tree_note));
                }
                Line::from(spans)
            }
        }
    }

    fn root_title(&self, side: Side) -> String {
        let Some(ex) = &self.exchange else {
            return String::new();
        };
        let api = ex.api_label();
        match side {
            Side::Request => format!(
                "Request: {api}, correlation id {}, {} bytes",
                ex.correlation_id,
                ex.request().len()
            ),
            Side::Response => {
                let mut s = format!(
                    "Response: {api}, {} bytes",
                    ex.response().map_or(0, <[u8]>::len)
                );
                if let Some(p) = ex.placement() {
                    s.push_str(&format!(", throttle_time_ms placement {p}"));
                }
                s
            }
        }
    }

    /// Draws the tree.
    pub fn draw(&mut self, f: &mut Frame, area: Rect, focused: bool, theme: &Theme) {
        self.area = area;
        let height = area.height.saturating_sub(2) as usize;
        self.page = height;
        self.offset = scroll_to(self.offset, self.selected, height);
        // No empty rows below the last one while rows above are hidden.
        self.offset = self.offset.min(self.lines.len().saturating_sub(height));
        let title = match self.selected_field() {
            Some((_, fld)) => format!(" {}: {} ", self.label, fld.name()),
            None => format!(" {} ", self.label),
        };
        let block = pane(title, focused, theme);
        let inner = block.inner(area);
        f.render_widget(block, area);
        if self.exchange.is_none() {
            f.render_widget(
                Paragraph::new("Select an exchange.").style(theme.dim),
                inner,
            );
            return;
        }
        let lines: Vec<Line> = self
            .lines
            .iter()
            .enumerate()
            .skip(self.offset)
            .take(height)
            .map(|(i, l)| {
                let mut line = self.line_text(l, theme);
                // A gutter mark that reads without colour too.
                if i == self.selected {
                    line.spans.insert(0, Span::raw("▶"));
                    line.style(theme.selected)
                } else {
                    line.spans.insert(0, Span::raw(" "));
                    line
                }
            })
            .collect();
        f.render_widget(Paragraph::new(lines), inner);
    }
}

/// The tree's side of a lint finding's side.
fn side_of(side: LintSide) -> Side {
    match side {
        LintSide::Request => Side::Request,
        LintSide::Response => Side::Response,
    }
}

/// How a finding of a level is shown: errors as decode errors are, the rest as notes.
pub fn lint_style(level: Level, theme: &Theme) -> Style {
    match level {
        Level::Error | Level::Warning => theme.hex_error,
        Level::Info => theme.tree_note,
    }
}

/// The hex view's marks for the findings on one side's frame: their bytes in their level's
/// style (a missing field marks the byte where it belongs).
pub fn lint_marks(findings: &[Finding], side: Side, theme: &Theme) -> Vec<(usize, usize, Style)> {
    findings
        .iter()
        .filter(|f| side_of(f.side) == side)
        .map(|f| {
            let start = f.start as usize;
            (
                start,
                (f.end as usize).saturating_sub(start),
                lint_style(f.level, theme),
            )
        })
        .collect()
}

/// A field's value as a person wants to read it.
pub fn value_text(f: &Field, buffer: &[u8]) -> String {
    let short = f.short_name();
    match &f.value {
        Value::Group => {
            let n = f
                .children
                .iter()
                .filter(|c| !c.name().ends_with(".array_length"))
                .count();
            if f.kind_is_array() {
                format!("{n} element{}", if n == 1 { "" } else { "s" })
            } else {
                String::new()
            }
        }
        Value::Element(_) => String::new(),
        Value::Int(v) => {
            if short == "api_key" {
                format!("{v} ({})", registry::api_name(*v as i16))
            } else if short == "error_code" {
                format!("{v} ({})", error_name(*v as i16))
            } else if (short.contains("timestamp")
                || short.ends_with("_time_ms")
                || short.ends_with("time"))
                && !short.contains("delta")
                && !short.contains("throttle")
                && !short.contains("timeout")
                && *v > 100_000_000_000
            {
                format!("{v} ({})", date_ms(*v))
            } else {
                v.to_string()
            }
        }
        Value::Float(x) => x.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Str(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        Value::Uuid(u) => u.clone(),
        Value::Bytes { start, len } => {
            let s = *start as usize;
            let bytes = buffer
                .get(s..s.saturating_add(*len as usize))
                .unwrap_or(&[]);
            crate::protocol::tree::bytes_text(bytes)
        }
    }
}

trait ArrayKind {
    fn kind_is_array(&self) -> bool;
}

impl ArrayKind for Field {
    fn kind_is_array(&self) -> bool {
        self.children
            .iter()
            .any(|c| c.name().ends_with(".array_length"))
    }
}
