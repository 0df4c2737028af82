//! A deque kept in fixed blocks, for the list's rows and its visible index: it grows a block at
//! a time instead of copying into a buffer twice the size. A `VecDeque` of a million rows
//! doubles its way there and leaves each smaller buffer freed behind it, which the allocator
//! keeps resident when nothing else on the UI thread reuses it (about 25 MB for the rows and
//! the index of a million exchanges); blocks freed at the front are reused at the back.

use std::collections::VecDeque;

/// Elements in a block (64 KiB of 16-byte rows: under the allocator's mmap threshold, so a
/// block freed at the front is reused for the next one at the back).
const BLOCK: usize = 4096;

/// The deque. Every block but the first (popped from) and the last (pushed to) is full.
#[derive(Debug, Clone)]
pub struct Blocks<T> {
    blocks: VecDeque<VecDeque<T>>,
    len: usize,
}

impl<T> Default for Blocks<T> {
    fn default() -> Self {
        Blocks {
            blocks: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> Blocks<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_back(&mut self, value: T) {
        match self.blocks.back_mut() {
            Some(b) if b.len() < BLOCK => b.push_back(value),
            _ => {
                let mut b = VecDeque::with_capacity(BLOCK);
                b.push_back(value);
                self.blocks.push_back(b);
            }
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let first = self.blocks.front_mut()?;
        let value = first.pop_front()?;
        if first.is_empty() {
            self.blocks.pop_front();
        }
        self.len -= 1;
        Some(value)
    }

    pub fn front(&self) -> Option<&T> {
        self.blocks.front().and_then(VecDeque::front)
    }

    pub fn back(&self) -> Option<&T> {
        self.blocks.back().and_then(VecDeque::back)
    }

    /// The block and the place in it of element `i` (`i` < len).
    fn locate(&self, i: usize) -> (usize, usize) {
        let first = self.blocks.front().map_or(0, VecDeque::len);
        if i < first {
            (0, i)
        } else {
            let j = i - first;
            (1 + j / BLOCK, j % BLOCK)
        }
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        let (b, at) = self.locate(i);
        self.blocks.get(b).and_then(|b| b.get(at))
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.iter_from(0)
    }

    /// The elements as slices, in order (faster to copy from than [`Blocks::iter`]).
    pub fn slices(&self) -> impl Iterator<Item = &[T]> + '_ {
        self.blocks.iter().flat_map(|b| {
            let (a, b) = b.as_slices();
            [a, b]
        })
    }

    /// The elements from the `start`th on, found without passing over the ones before it.
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = &T> + '_ {
        let (b, at) = if start < self.len {
            self.locate(start)
        } else {
            (self.blocks.len(), 0)
        };
        self.blocks
            .range(b..)
            .enumerate()
            .flat_map(move |(k, block)| block.range(if k == 0 { at } else { 0 }..))
    }

    /// The index of the first element for which `pred` is false, `pred` being true of a prefix
    /// (as `slice::partition_point`).
    pub fn partition_point(&self, mut pred: impl FnMut(&T) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid) {
                Some(v) if pred(v) => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    }
}

impl<T> Extend<T> for Blocks<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for v in iter {
            self.push_back(v);
        }
    }
}

impl<T> FromIterator<T> for Blocks<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut b = Blocks::new();
        b.extend(iter);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushed at the back and popped at the front across many blocks, it reads as a `VecDeque`
    /// fed the same: by index, from any start, and by partition point.
    #[test]
    fn reads_as_a_vecdeque_across_blocks() {
        let (mut b, mut d) = (Blocks::new(), VecDeque::new());
        let mut next = 0u64;
        for round in 0..6 {
            for _ in 0..(BLOCK * 2 + 17 * round) {
                b.push_back(next);
                d.push_back(next);
                next += 1;
            }
            for _ in 0..(BLOCK + 5 * round) {
                assert_eq!(b.pop_front(), d.pop_front());
            }
            assert_eq!(b.len(), d.len());
            assert_eq!((b.front(), b.back()), (d.front(), d.back()));
            for i in [
                0,
                1,
                BLOCK - 1,
                BLOCK,
                BLOCK + 1,
                d.len() - 1,
                d.len(),
                d.len() + 9,
            ] {
                assert_eq!(b.get(i), d.get(i), "get({i})");
                let from: Vec<_> = b.iter_from(i).copied().collect();
                let want: Vec<_> = d.range(i.min(d.len())..).copied().collect();
                assert_eq!(from, want, "iter_from({i})");
                let seq = d.get(i).copied().unwrap_or(next);
                assert_eq!(
                    b.partition_point(|s| *s < seq),
                    d.partition_point(|s| *s < seq)
                );
            }
        }
        let flat: Vec<u64> = b.slices().flatten().copied().collect();
        assert_eq!(flat, d.iter().copied().collect::<Vec<_>>());
        // Only whole blocks between the first and the last are held.
        assert!(b.blocks.len() <= b.len() / BLOCK + 2);
        while b.pop_front().is_some() {}
        assert!(b.is_empty() && b.blocks.is_empty());
    }
}
