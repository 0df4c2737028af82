//! The hex view: the raw frame (or a decompressed batch) with ASCII, the selected field's bytes
//! highlighted, the byte where decoding failed marked, and a cursor whose byte selects the field
//! that owns it.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::field_tree::{ByteSpan, FieldTree, Side};
use super::{pane, Outcome};
use crate::protocol::tree::BufferId;
use crate::tui::theme::Theme;

/// What the hex pane shows.
#[derive(Debug, Clone, Copy)]
pub struct HexData<'a> {
    /// The buffer (a frame or a decompressed batch).
    pub bytes: &'a [u8],
    /// The selected field's (offset, length).
    pub highlight: Option<(usize, usize)>,
    /// Where decoding failed.
    pub error_at: Option<usize>,
    /// Other spans to show in their own style, (offset, length, style): a replay's differing
    /// fields. The selected field's highlight goes over them.
    pub marks: &'a [(usize, usize, Style)],
}

/// The hex pane's state.
#[derive(Debug, Default)]
pub struct HexView {
    /// Byte under the cursor.
    pub cursor: usize,
    /// Which side and buffer is shown.
    pub side: Option<Side>,
    pub buffer: BufferId,
    /// First row shown.
    top: usize,
    /// Bytes per row at the last draw.
    per_row: usize,
    rows_shown: usize,
    len: usize,
    /// The area drawn last (for the mouse).
    pub area: Rect,
}

/// Width of the offset column for a buffer of `len` bytes.
fn offset_width(len: usize) -> usize {
    if len <= 0x1_0000 {
        4
    } else {
        8
    }
}

/// Bytes per row that fit `width` columns: 16, 8 or 4.
pub fn bytes_per_row(width: usize, len: usize) -> usize {
    let ow = offset_width(len);
    for n in [16, 8, 4] {
        let gaps = (n - 1) / 8;
        if ow + 2 + n * 3 + gaps + n <= width {
            return n;
        }
    }
    4
}

impl HexView {
    /// Shows a side's buffer; the cursor moves to `span`'s first byte when it is not inside it.
    pub fn follow(&mut self, span: Option<ByteSpan>) {
        if let Some(s) = span {
            let moved = self.side != Some(s.side) || self.buffer != s.buffer;
            self.side = Some(s.side);
            self.buffer = s.buffer;
            if moved || self.cursor < s.offset || self.cursor >= s.offset + s.len.max(1) {
                self.cursor = s.offset;
            }
        }
    }

    /// Handles a key; `Consumed` means the cursor moved (the app then selects the field).
    pub fn on_key(&mut self, key: KeyEvent) -> Outcome {
        let row = self.per_row.max(1);
        let last = self.len.saturating_sub(1);
        let page = row * self.rows_shown.max(1);
        let c = self.cursor;
        self.cursor = match key.code {
            KeyCode::Right | KeyCode::Char('l') => (c + 1).min(last),
            KeyCode::Left | KeyCode::Char('h') => c.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => (c + row).min(last),
            KeyCode::Up | KeyCode::Char('k') => c.saturating_sub(row),
            KeyCode::PageDown => (c + page).min(last),
            KeyCode::PageUp => c.saturating_sub(page),
            KeyCode::Home | KeyCode::Char('0') => c - c % row,
            KeyCode::Char('g') => 0,
            KeyCode::End | KeyCode::Char('$') => (c - c % row + row - 1).min(last),
            KeyCode::Char('G') => last,
            _ => return Outcome::Ignored,
        };
        Outcome::Consumed
    }

    /// Puts the cursor on the byte at a screen cell (mouse); true when there is one.
    pub fn click(&mut self, column: u16, row: u16) -> bool {
        let (Some(line), Some(col)) = (
            row.checked_sub(self.area.y + 1),
            column.checked_sub(self.area.x + 1),
        ) else {
            return false;
        };
        let per = self.per_row.max(1);
        let ow = offset_width(self.len);
        let col = col as usize;
        let hex_start = ow + 2;
        let ascii_start = hex_start + per * 3 + (per - 1) / 8;
        let index = if col >= ascii_start {
            col - ascii_start
        } else if col >= hex_start {
            let c = col - hex_start;
            // Skip the extra gap after each group of 8.
            let c = c - (c / 25).min((per - 1) / 8);
            c / 3
        } else {
            return false;
        };
        if index >= per {
            return false;
        }
        let pos = (self.top + line as usize) * per + index;
        if pos < self.len && (line as usize) < self.rows_shown {
            self.cursor = pos;
            true
        } else {
            false
        }
    }

    /// Scrolls by mouse wheel (rows).
    pub fn scroll(&mut self, delta: isize) {
        let per = self.per_row.max(1) as isize;
        let last = self.len.saturating_sub(1) as isize;
        self.cursor = (self.cursor as isize + delta * per).clamp(0, last.max(0)) as usize;
    }

    /// Draws the buffer of the tree's exchange that this view shows, with the tree's selected
    /// field highlighted, the byte where its decoding failed, and `marks` (spans of the shown
    /// buffer of the response, in their styles).
    pub fn draw_for(
        &mut self,
        f: &mut Frame,
        area: Rect,
        focused: bool,
        theme: &Theme,
        tree: &FieldTree,
        marks: &[(usize, usize, Style)],
    ) {
        let span = tree.selected_span();
        let side = self.side.unwrap_or(Side::Request);
        let bytes = tree.bytes(side, self.buffer).to_vec();
        let highlight = span
            .filter(|s| Some(s.side) == self.side && s.buffer == self.buffer)
            .map(|s| (s.offset, s.len));
        let error_at = tree
            .dissection(side)
            .and_then(|d| d.error.as_ref())
            .filter(|_| self.buffer == 0)
            .map(|e| e.offset);
        // The lint's findings under any marks given (those drawn last win).
        let mut all = if self.buffer == 0 {
            super::field_tree::lint_marks(tree.findings(), side, theme)
        } else {
            Vec::new()
        };
        if side == Side::Response {
            all.extend_from_slice(marks);
        }
        let marks = &all[..];
        self.draw(
            f,
            area,
            focused,
            theme,
            HexData {
                bytes: &bytes,
                highlight,
                error_at,
                marks,
            },
        );
    }

    /// Draws the bytes with the highlight and the failing offset.
    pub fn draw(
        &mut self,
        f: &mut Frame,
        area: Rect,
        focused: bool,
        theme: &Theme,
        data: HexData<'_>,
    ) {
        let HexData {
            bytes,
            highlight,
            error_at,
            marks,
        } = data;
        self.area = area;
        self.len = bytes.len();
        self.cursor = self.cursor.min(bytes.len().saturating_sub(1));
        let what = match (self.side, self.buffer) {
            (None, _) => "",
            (Some(Side::Request), 0) => "request frame",
            (Some(Side::Response), 0) => "response frame",
            (Some(_), _) => "decompressed records",
        };
        let title = format!(
            " Hex: {what}, {} bytes, cursor @{} ",
            bytes.len(),
            self.cursor
        );
        let block = pane(title, focused, theme);
        let inner = block.inner(area);
        f.render_widget(block, area);
        let per = bytes_per_row(inner.width as usize, bytes.len());
        self.per_row = per;
        let height = inner.height as usize;
        self.rows_shown = height;
        let cursor_row = self.cursor / per;
        self.top = super::scroll_to(self.top, cursor_row, height);
        // Bring the highlighted field into view when the cursor is at its start.
        let ow = offset_width(bytes.len());
        let style_of = |pos: usize| -> Style {
            if error_at == Some(pos) {
                theme.hex_error
            } else if focused && pos == self.cursor {
                theme.hex_cursor
            } else if highlight.is_some_and(|(o, l)| pos >= o && pos < o + l.max(1)) {
                theme.hex_highlight
            } else if let Some((_, _, style)) = marks
                .iter()
                .rev()
                .find(|(o, l, _)| pos >= *o && pos < o + (*l).max(1))
            {
                *style
            } else {
                theme.hex_bytes
            }
        };
        let mut lines = Vec::with_capacity(height);
        for r in self.top..(self.top + height) {
            let start = r * per;
            if start >= bytes.len() && !(start == 0 && bytes.is_empty()) {
                break;
            }
            let mut spans = vec![Span::styled(format!("{start:0ow$x}  "), theme.hex_offset)];
            for i in 0..per {
                let pos = start + i;
                if i > 0 && i % 8 == 0 {
                    spans.push(Span::raw(" "));
                }
                match bytes.get(pos) {
                    Some(b) => {
                        spans.push(Span::styled(format!("{b:02x}"), style_of(pos)));
                        spans.push(Span::raw(" "));
                    }
                    None => spans.push(Span::raw("   ")),
                }
            }
            for i in 0..per {
                let pos = start + i;
                if let Some(b) = bytes.get(pos) {
                    let c = if b.is_ascii_graphic() || *b == b' ' {
                        *b as char
                    } else {
                        '.'
                    };
                    spans.push(Span::styled(c.to_string(), style_of(pos)));
                }
            }
            lines.push(Line::from(spans));
        }
        f.render_widget(Paragraph::new(lines), inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_width_adapts() {
        assert_eq!(bytes_per_row(80, 100), 16);
        assert_eq!(bytes_per_row(40, 100), 8);
        assert_eq!(bytes_per_row(20, 100), 4);
    }
}
