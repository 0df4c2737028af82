//! The store's live feed of new exchanges: one ring that every subscriber reads at its own
//! pace. The ring is bounded by count and by frame bytes, so a subscriber that falls behind
//! (a printer on a slow pipe, the stall detector in a debug build) costs at most
//! [`FEED_BYTES`] beyond the store's own cap; it loses the oldest exchanges it had not read and
//! is told how many. An exchange every subscriber has read is not held. The producer never
//! waits.
//!
//! (A `tokio::sync::broadcast` channel bounds only the count: 4096 fetch responses of 4 MiB
//! waiting for one slow reader would be 16 GiB.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::Notify;

use super::Exchange;

/// Most exchanges the feed keeps for subscribers that have not read them.
pub const FEED_EXCHANGES: usize = 4096;
/// Most frame bytes it keeps for them (the newest exchange is kept whatever its size).
pub const FEED_BYTES: usize = 16 << 20;

pub(crate) struct Feed {
    ring: Mutex<Ring>,
    arrived: Notify,
    /// Subscribers waiting on `arrived` (or about to): with none, a send wakes nobody and
    /// takes no lock for it.
    waiting: AtomicUsize,
}

#[derive(Default)]
struct Ring {
    /// Exchanges some subscriber has not read yet. Each subscriber reads in order, so those
    /// every subscriber has read are a prefix, and go at once.
    items: VecDeque<Slot>,
    /// Sequence number of `items[0]`; the next one sent is `first + items.len()`.
    first: u64,
    /// Frame bytes of `items`.
    bytes: usize,
    subscribers: usize,
    closed: bool,
}

struct Slot {
    ex: Arc<Exchange>,
    /// Subscribers (of those there were when it was sent) that have not read it.
    unread: usize,
}

impl Ring {
    fn next(&self) -> u64 {
        self.first + self.items.len() as u64
    }

    fn pop_front(&mut self) {
        if let Some(old) = self.items.pop_front() {
            self.bytes -= old.ex.size();
            self.first += 1;
        }
    }

    /// Forgets the oldest that every subscriber has read, and beyond the caps the oldest
    /// whatever was read.
    fn trim(&mut self) {
        while self.items.front().is_some_and(|s| s.unread == 0)
            || self.items.len() > FEED_EXCHANGES
            || (self.bytes > FEED_BYTES && self.items.len() > 1)
        {
            self.pop_front();
        }
    }
}

impl Feed {
    pub(crate) fn new() -> Arc<Feed> {
        Arc::new(Feed {
            ring: Mutex::new(Ring::default()),
            arrived: Notify::new(),
            waiting: AtomicUsize::new(0),
        })
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        // Every update leaves the ring consistent, so a poisoned lock is still usable.
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `exchanges` for every subscriber (none: they are not kept), forgetting the oldest
    /// beyond the caps.
    pub(crate) fn send(&self, exchanges: &[Arc<Exchange>]) {
        {
            let mut r = self.ring();
            if r.subscribers == 0 {
                return;
            }
            let unread = r.subscribers;
            for ex in exchanges {
                r.bytes += ex.size();
                r.items.push_back(Slot {
                    ex: ex.clone(),
                    unread,
                });
                r.trim();
            }
        }
        // A subscriber counts itself before it looks at the ring under its lock, so one that
        // found nothing there is counted by now.
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.arrived.notify_waiters();
        }
    }

    /// No more exchanges: subscribers read what is left, then get `Closed`.
    pub(crate) fn close(&self) {
        self.ring().closed = true;
        self.arrived.notify_waiters();
    }

    pub(crate) fn subscribe(self: &Arc<Feed>) -> Subscription {
        let mut r = self.ring();
        r.subscribers += 1;
        Subscription {
            feed: self.clone(),
            next: r.next(),
        }
    }
}

/// A live feed of new exchanges (from the moment of [`crate::Store::subscribe`]). A subscriber
/// that falls behind the feed's caps loses the oldest ones and is told how many
/// (`RecvError::Lagged`); once the store is dropped it reads what is left, then `Closed`.
pub struct Subscription {
    feed: Arc<Feed>,
    /// Sequence number of the next exchange this subscriber reads.
    next: u64,
}

impl Subscription {
    /// The next exchange, without waiting.
    pub fn try_recv(&mut self) -> Result<Arc<Exchange>, TryRecvError> {
        let mut r = self.feed.ring();
        if self.next < r.first {
            let missed = r.first - self.next;
            self.next = r.first;
            return Err(TryRecvError::Lagged(missed));
        }
        let at = (self.next - r.first) as usize;
        let Some(slot) = r.items.get_mut(at) else {
            return Err(if r.closed {
                TryRecvError::Closed
            } else {
                TryRecvError::Empty
            });
        };
        slot.unread -= 1;
        let ex = slot.ex.clone();
        self.next += 1;
        if at == 0 {
            r.trim();
        }
        Ok(ex)
    }

    /// The next exchange, waiting for one. Cancel safe: dropped before it is ready, nothing is
    /// lost.
    pub async fn recv(&mut self) -> Result<Arc<Exchange>, RecvError> {
        let result = |r: Result<Arc<Exchange>, TryRecvError>| match r {
            Ok(ex) => Some(Ok(ex)),
            Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
            Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
            Err(TryRecvError::Empty) => None,
        };
        loop {
            // What is there already is taken without registering to wait.
            if let Some(r) = result(self.try_recv()) {
                return r;
            }
            let feed = self.feed.clone();
            // Registered and counted before looking again, so an exchange sent in between
            // still wakes this.
            let arrived = feed.arrived.notified();
            let mut arrived = std::pin::pin!(arrived);
            arrived.as_mut().enable();
            let _waiting = Waiting::count(&feed.waiting);
            if let Some(r) = result(self.try_recv()) {
                return r;
            }
            arrived.await;
        }
    }
}

/// A subscriber counted in [`Feed::waiting`] while this lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn count(n: &'a AtomicUsize) -> Waiting<'a> {
        n.fetch_add(1, Ordering::SeqCst);
        Waiting(n)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Subscription {
    /// What it had not read no longer waits for it.
    fn drop(&mut self) {
        let mut r = self.feed.ring();
        r.subscribers -= 1;
        let from = self.next.saturating_sub(r.first) as usize;
        for slot in r.items.iter_mut().skip(from) {
            slot.unread -= 1;
        }
        r.trim();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Endpoints, Status};

    fn ex(id: u64, size: usize) -> Arc<Exchange> {
        let peer = "127.0.0.1:1".parse().unwrap();
        let mut ex = Exchange::new(1, Endpoints::of(peer), 0, Status::NoResponse)
            .with_frames(vec![0; size], None);
        ex.id = id;
        Arc::new(ex)
    }

    /// A subscriber that falls behind holds at most the feed's bytes: the rest is freed, and
    /// it is told how many it lost before it reads on from the oldest kept.
    #[test]
    fn a_slow_subscriber_loses_the_oldest_beyond_the_byte_cap() {
        let feed = Feed::new();
        let mut slow = feed.subscribe();
        let size = 1 << 20;
        let n = (FEED_BYTES / size) as u64 + 5;
        let sent: Vec<_> = (1..=n).map(|i| ex(i, size)).collect();
        for e in &sent {
            feed.send(std::slice::from_ref(e));
        }
        // Only the feed's own and `sent`'s references remain to the kept ones.
        let kept = sent.iter().filter(|e| Arc::strong_count(e) > 1).count();
        assert_eq!(kept, FEED_BYTES / size);
        assert_eq!(slow.try_recv().unwrap_err(), TryRecvError::Lagged(5));
        assert_eq!(slow.try_recv().unwrap().id, 6);
        let rest = std::iter::from_fn(|| slow.try_recv().ok()).count();
        assert_eq!(rest as u64, n - 6);
        assert_eq!(slow.try_recv().unwrap_err(), TryRecvError::Empty);
    }

    /// A run sent at once is trimmed as if sent one by one: a subscriber loses the run's
    /// oldest beyond the count cap, is told how many, and reads the rest in order.
    #[test]
    fn a_run_past_the_cap_keeps_its_newest_in_order() {
        let feed = Feed::new();
        let mut sub = feed.subscribe();
        let n = FEED_EXCHANGES as u64 + 10;
        let run: Vec<_> = (1..=n).map(|i| ex(i, 10)).collect();
        feed.send(&run);
        assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Lagged(10));
        let read: Vec<u64> = std::iter::from_fn(|| sub.try_recv().ok().map(|e| e.id)).collect();
        assert_eq!(read, (11..=n).collect::<Vec<_>>());
        assert_eq!(feed.ring().bytes, 0, "everything read is let go");
    }

    /// An exchange every subscriber has read is not held any more; nor is one whose only
    /// unread subscriber went away; nor any with no subscriber at all.
    #[test]
    fn what_every_subscriber_has_read_is_freed() {
        let feed = Feed::new();
        let lone = ex(1, 10);
        feed.send(std::slice::from_ref(&lone));
        assert_eq!(Arc::strong_count(&lone), 1);
        let mut a = feed.subscribe();
        let b = feed.subscribe();
        let e = ex(2, 10);
        feed.send(std::slice::from_ref(&e));
        assert_eq!(a.try_recv().unwrap().id, 2);
        assert_eq!(Arc::strong_count(&e), 2, "b has not read it");
        drop(b);
        assert_eq!(Arc::strong_count(&e), 1);
        assert_eq!(feed.ring().bytes, 0);
    }

    /// One exchange larger than the cap is still delivered; a subscriber made later sees only
    /// what comes after it.
    #[test]
    fn the_newest_is_kept_whatever_its_size_and_late_subscribers_start_at_the_end() {
        let feed = Feed::new();
        let mut a = feed.subscribe();
        feed.send(&[ex(1, FEED_BYTES * 2)]);
        let mut b = feed.subscribe();
        assert_eq!(a.try_recv().unwrap().id, 1);
        assert_eq!(b.try_recv().unwrap_err(), TryRecvError::Empty);
        feed.send(&[ex(2, 10)]);
        assert_eq!(a.try_recv().unwrap().id, 2);
        assert_eq!(b.try_recv().unwrap().id, 2);
        assert_eq!(a.try_recv().unwrap_err(), TryRecvError::Empty);
    }

    /// A waiting subscriber wakes for a new exchange, and after the close reads what is left
    /// before `Closed`.
    #[tokio::test]
    async fn recv_waits_then_drains_before_closed() {
        let feed = Feed::new();
        let mut sub = feed.subscribe();
        let sender = feed.clone();
        let waiter = tokio::spawn(async move {
            let first = sub.recv().await.map(|e| e.id);
            (first, sub)
        });
        tokio::task::yield_now().await;
        sender.send(&[ex(7, 10)]);
        let (first, mut sub) = waiter.await.unwrap();
        assert_eq!(first, Ok(7));
        sender.send(&[ex(8, 10)]);
        sender.close();
        assert_eq!(sub.recv().await.map(|e| e.id), Ok(8));
        assert_eq!(sub.recv().await.map(|e| e.id), Err(RecvError::Closed));
    }

    /// A sender on another thread and a subscriber that waits between bursts: every exchange
    /// is read or counted as lost, in order, and no wake-up is missed (the last one read ends
    /// the wait well before the timeout).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_wake_up_is_missed_across_threads() {
        const N: u64 = 20_000;
        let feed = Feed::new();
        let mut sub = feed.subscribe();
        let sender = feed.clone();
        let thread = std::thread::spawn(move || {
            for id in 1..=N {
                sender.send(&[ex(id, 10)]);
                if id % 64 == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let (mut seen, mut last) = (0u64, 0u64);
        let read = async {
            while seen < N {
                match sub.recv().await {
                    Ok(e) => {
                        assert!(e.id > last, "{} after {last}", e.id);
                        last = e.id;
                        seen += 1;
                    }
                    Err(RecvError::Lagged(n)) => seen += n,
                    Err(RecvError::Closed) => panic!("closed"),
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), read)
            .await
            .expect("a wake-up was missed");
        thread.join().unwrap();
        assert_eq!((seen, last), (N, N));
    }
}
