//! The bounded exchange store: keeps the newest exchanges within a count and a byte cap, and
//! publishes each new one to subscribers without ever blocking the producer.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::broadcast;

use super::{ConnEvent, Dissected, Exchange};
use crate::feed::Feed;
pub use crate::feed::Subscription;
use chronik_protocol::Limits;

/// Most dissections [`Store::dissected`] keeps for the views that have not read them yet.
const SHARED_DISSECTIONS: usize = 256;
/// Most frame bytes of the exchanges whose dissections it keeps (their trees grow with them).
const SHARED_DISSECTION_BYTES: usize = 16 << 20;

/// Caps on what the store keeps.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    pub max_exchanges: usize,
    pub max_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_exchanges: 100_000,
            max_bytes: 512 * 1024 * 1024,
        }
    }
}

struct Inner {
    items: VecDeque<Arc<Exchange>>,
    bytes: usize,
    next_id: u64,
    evicted: u64,
    /// The newest connection events (at most `max_exchanges` of them).
    conn_events: VecDeque<Arc<ConnEvent>>,
    /// The newest markers (at most `max_exchanges` of them).
    markers: VecDeque<Arc<Marker>>,
    next_marker: u64,
    /// Requests a source is handling now, per connection.
    in_flight: std::collections::HashMap<u64, InFlight>,
}

/// A request being handled: read, its response not yet written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct InFlight {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    /// When it arrived, µs since the epoch.
    pub since: i64,
}

/// A note in the capture's timeline that is not a frame: a setting changed while clients ran
/// (placement, rules, throttle, caps), so a capture explains itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Marker {
    /// Sequence number among markers, from 1.
    pub id: u64,
    /// When, µs since the epoch.
    pub at: i64,
    /// Id of the newest exchange stored before it (0: none), to place it in the list.
    pub after_exchange: u64,
    /// What changed, e.g. `placement: front (was spec)`.
    pub text: String,
}

/// One item of the store's [`Store::timeline`].
#[derive(Debug, Clone)]
pub enum TimelineItem {
    Exchange(Arc<Exchange>),
    ConnEvent(Arc<ConnEvent>),
    Marker(Arc<Marker>),
}

/// The store. Cheap to share (`Arc<Store>`).
pub struct Store {
    limits: StoreLimits,
    /// False for a store that keeps and publishes nothing ([`Store::off`]).
    capturing: bool,
    /// The next connection id [`Store::new_conn_id`] hands out.
    next_conn: std::sync::atomic::AtomicU64,
    inner: Mutex<Inner>,
    /// What the lint remembers of each connection's past (apart from `inner`, so readers of
    /// the store never wait on it); `None` in a store whose reader keeps it
    /// ([`Store::without_history`]).
    history: Option<Mutex<crate::lint::History>>,
    feed: Arc<Feed>,
    conn_tx: broadcast::Sender<Arc<ConnEvent>>,
    shared: Mutex<SharedDissections>,
}

/// The newest exchanges' dissections, each computed once for every view that asks
/// ([`Store::dissected`]). Keyed by the exchange's allocation: the entry's weak reference keeps
/// that address from being reused while the entry lives, so a key names one exchange.
#[derive(Default)]
struct SharedDissections {
    entries: HashMap<usize, SharedEntry>,
    /// Keys, oldest first.
    order: VecDeque<usize>,
    /// Frame bytes of the exchanges in `entries`.
    bytes: usize,
}

struct SharedEntry {
    exchange: Weak<Exchange>,
    bytes: usize,
    dissected: Arc<OnceLock<Arc<Dissected>>>,
}

impl SharedDissections {
    /// The cell holding `ex`'s dissection, added (and the oldest forgotten past the caps) the
    /// first time.
    fn cell(&mut self, ex: &Arc<Exchange>) -> Arc<OnceLock<Arc<Dissected>>> {
        let key = Arc::as_ptr(ex) as usize;
        if let Some(e) = self.entries.get(&key) {
            if std::ptr::eq(e.exchange.as_ptr(), Arc::as_ptr(ex)) {
                return e.dissected.clone();
            }
        }
        let entry = SharedEntry {
            exchange: Arc::downgrade(ex),
            bytes: ex.size(),
            dissected: Arc::new(OnceLock::new()),
        };
        let cell = entry.dissected.clone();
        self.bytes += entry.bytes;
        if let Some(old) = self.entries.insert(key, entry) {
            self.bytes -= old.bytes;
        } else {
            self.order.push_back(key);
        }
        while self.order.len() > SHARED_DISSECTIONS
            || (self.bytes > SHARED_DISSECTION_BYTES && self.order.len() > 1)
        {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(e) = self.entries.remove(&old) {
                self.bytes -= e.bytes;
            }
        }
        cell
    }
}

impl Store {
    pub fn new(limits: StoreLimits) -> Arc<Store> {
        Arc::new(Store::build(limits, true))
    }

    /// A store that numbers and keeps exchanges but leaves the lint's [`History`] to its
    /// reader: `decode` reads each exchange's [`Facts`] on its printing threads and applies
    /// the history in order on its writing thread, instead of on the thread that reads the
    /// capture.
    ///
    /// [`History`]: crate::lint::History
    /// [`Facts`]: crate::lint::Facts
    pub fn without_history(limits: StoreLimits) -> Arc<Store> {
        let mut store = Store::build(limits, true);
        store.history = None;
        Arc::new(store)
    }

    fn build(limits: StoreLimits, capturing: bool) -> Store {
        let (conn_tx, _) = broadcast::channel(4096);
        Store {
            limits,
            capturing,
            next_conn: std::sync::atomic::AtomicU64::new(1),
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                bytes: 0,
                next_id: 1,
                evicted: 0,
                conn_events: VecDeque::new(),
                markers: VecDeque::new(),
                next_marker: 1,
                in_flight: std::collections::HashMap::new(),
            }),
            history: Some(Mutex::new(crate::lint::History::default())),
            feed: Feed::new(),
            conn_tx,
            shared: Mutex::new(SharedDissections::default()),
        }
    }

    /// A store that captures nothing: every push is dropped at once (no id, no lint, no feed),
    /// so a source runs as it would with no debugger attached. What `--no-capture` gives, to
    /// measure what capture costs.
    pub fn off() -> Arc<Store> {
        let nothing = StoreLimits {
            max_exchanges: 0,
            max_bytes: 0,
        };
        Arc::new(Store::build(nothing, false))
    }

    /// An exchange's dissection for the views of live traffic (record sets not expanded, see
    /// [`Limits::WITHOUT_RECORDS`]), computed once and shared: the stall detector and the
    /// headless printer, each on its own feed, read the same one. The newest few hundred are
    /// kept (within 16 MiB of frames); a view that falls further behind gets one computed anew.
    /// Any exchange may be passed, from this store or not.
    pub fn dissected(&self, ex: &Arc<Exchange>) -> Arc<Dissected> {
        let cell = self
            .shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cell(ex);
        // Computed outside the lock; a second view asking meanwhile waits for this one.
        cell.get_or_init(|| Arc::new(ex.dissect_with(Limits::WITHOUT_RECORDS)))
            .clone()
    }

    /// A connection id no other connection recorded in this store has (from 1): a source that
    /// numbers its own connections takes them here, so two brokers one after the other on one
    /// store (a scenario's restart) never share an id.
    pub fn new_conn_id(&self) -> u64 {
        self.next_conn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves consistent data (every update is a
        // single push or pop), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an exchange, assigning its id; evicts the oldest beyond the caps.
    pub fn push(&self, mut ex: Exchange) -> Arc<Exchange> {
        if !self.capturing {
            return Arc::new(ex);
        }
        self.lint(std::slice::from_mut(&mut ex));
        let ex = self.keep(&mut self.lock(), ex);
        self.feed.send(std::slice::from_ref(&ex));
        ex
    }

    /// Adds `exchanges` in order, as [`Store::push`] adds each, under one lock of the store
    /// and one of its feed, and appends each to `stored` once it is stored. A file's reader
    /// hands its exchanges on in runs.
    pub fn push_all(&self, exchanges: &mut Vec<Exchange>, stored: &mut Vec<Arc<Exchange>>) {
        if !self.capturing {
            stored.extend(exchanges.drain(..).map(Arc::new));
            return;
        }
        self.lint(exchanges);
        let first = stored.len();
        {
            let mut g = self.lock();
            for ex in exchanges.drain(..) {
                stored.push(self.keep(&mut g, ex));
            }
        }
        self.feed.send(&stored[first..]);
    }

    /// The lint's findings on each exchange, given the connection history (when the store
    /// keeps it).
    fn lint(&self, exchanges: &mut [Exchange]) {
        if let Some(history) = &self.history {
            let mut history = history.lock().unwrap_or_else(|e| e.into_inner());
            for ex in exchanges {
                let lint = history.check(ex);
                ex.set_lint(lint);
            }
        }
    }

    /// Numbers `ex` and keeps it, evicting the oldest beyond the caps.
    fn keep(&self, g: &mut Inner, mut ex: Exchange) -> Arc<Exchange> {
        ex.id = g.next_id;
        g.next_id += 1;
        let ex = Arc::new(ex);
        g.bytes += ex.size();
        g.items.push_back(ex.clone());
        while g.items.len() > self.limits.max_exchanges
            || (g.bytes > self.limits.max_bytes && g.items.len() > 1)
        {
            if let Some(old) = g.items.pop_front() {
                g.bytes -= old.size();
                g.evicted += 1;
            }
        }
        ex
    }

    /// Records a connection event and publishes it (never waits).
    pub fn push_conn_event(&self, ev: ConnEvent) -> Arc<ConnEvent> {
        if !self.capturing {
            return Arc::new(ev);
        }
        if let (super::ConnEventKind::Closed { .. }, Some(history)) = (&ev.kind, &self.history) {
            history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .closed(ev.conn);
        }
        let ev = Arc::new(ev);
        {
            let mut g = self.lock();
            g.conn_events.push_back(ev.clone());
            while g.conn_events.len() > self.limits.max_exchanges.max(1) {
                g.conn_events.pop_front();
            }
        }
        let _ = self.conn_tx.send(ev.clone());
        ev
    }

    /// Notes that a connection's request is being handled (a source serving requests calls it
    /// when a request arrives, and [`Store::end_request`] once its exchange is pushed).
    pub fn begin_request(&self, conn: u64, request: InFlight) {
        if !self.capturing {
            return;
        }
        self.lock().in_flight.insert(conn, request);
    }

    /// Clears what [`Store::begin_request`] noted.
    pub fn end_request(&self, conn: u64) {
        if !self.capturing {
            return;
        }
        self.lock().in_flight.remove(&conn);
    }

    /// The request a connection's source is handling now, if any.
    pub fn in_flight(&self, conn: u64) -> Option<InFlight> {
        self.lock().in_flight.get(&conn).copied()
    }

    /// Records a marker at the current end of the timeline.
    pub fn push_marker(&self, text: String) -> Arc<Marker> {
        let mut g = self.lock();
        let m = Arc::new(Marker {
            id: g.next_marker,
            at: super::exchange::now_micros(),
            after_exchange: g.next_id - 1,
            text,
        });
        g.next_marker += 1;
        g.markers.push_back(m.clone());
        while g.markers.len() > self.limits.max_exchanges.max(1) {
            g.markers.pop_front();
        }
        m
    }

    /// Markers with id greater than `after`, oldest first.
    pub fn markers_since(&self, after: u64) -> Vec<Arc<Marker>> {
        let g = self.lock();
        let start = g.markers.partition_point(|m| m.id <= after);
        g.markers.range(start..).cloned().collect()
    }

    /// Subscribes to connection events pushed from now on.
    pub fn subscribe_conn_events(&self) -> broadcast::Receiver<Arc<ConnEvent>> {
        self.conn_tx.subscribe()
    }

    /// The connection events currently held, oldest first.
    pub fn conn_events(&self) -> Vec<Arc<ConnEvent>> {
        self.lock().conn_events.iter().cloned().collect()
    }

    /// Subscribes to exchanges pushed from now on (see [`Subscription`] for one that falls
    /// behind).
    pub fn subscribe(&self) -> Subscription {
        self.feed.subscribe()
    }

    /// A copy of the exchanges currently held, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<Exchange>> {
        self.lock().items.iter().cloned().collect()
    }

    /// Exchanges with id greater than `after`, oldest first.
    pub fn since(&self, after: u64) -> Vec<Arc<Exchange>> {
        let g = self.lock();
        let start = g.items.partition_point(|e| e.id <= after);
        g.items.range(start..).cloned().collect()
    }

    /// The caps this store keeps to.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// Id of the oldest exchange still held (None: none held).
    pub fn oldest_id(&self) -> Option<u64> {
        self.lock().items.front().map(|e| e.id)
    }

    /// Id of the newest exchange pushed (0: none yet).
    pub fn newest_id(&self) -> u64 {
        self.lock().next_id - 1
    }

    /// Everything held now, in one order: exchanges by id, each marker after the exchange it
    /// follows, each connection event before the first exchange whose request came after it.
    pub fn timeline(&self) -> Vec<TimelineItem> {
        let mut markers = self.markers_since(0).into_iter().peekable();
        let mut events = self.conn_events().into_iter().peekable();
        let mut out = Vec::new();
        for ex in self.snapshot() {
            while let Some(m) = markers.next_if(|m| m.after_exchange < ex.id) {
                out.push(TimelineItem::Marker(m));
            }
            while let Some(e) = events.next_if(|e| e.at <= ex.request_at) {
                out.push(TimelineItem::ConnEvent(e));
            }
            out.push(TimelineItem::Exchange(ex));
        }
        out.extend(markers.map(TimelineItem::Marker));
        out.extend(events.map(TimelineItem::ConnEvent));
        out
    }

    /// (held, bytes held, evicted so far).
    pub fn stats(&self) -> (usize, usize, u64) {
        let g = self.lock();
        (g.items.len(), g.bytes, g.evicted)
    }
}

impl Drop for Store {
    /// Subscribers read what is left of the feed, then see it closed.
    fn drop(&mut self) {
        self.feed.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Endpoints, Status};

    fn ex(size: usize) -> Exchange {
        let peer = "127.0.0.1:1".parse().unwrap();
        let mut ex = Exchange::new(1, Endpoints::of(peer), 0, Status::NoResponse)
            .with_frames(vec![0; size], None);
        ex.api_key = 18;
        ex.api_version = 0;
        ex.correlation_id = 1;
        ex
    }

    #[test]
    fn evicts_by_count_and_bytes() {
        let s = Store::new(StoreLimits {
            max_exchanges: 3,
            max_bytes: 100,
        });
        for _ in 0..5 {
            s.push(ex(10));
        }
        let ids: Vec<u64> = s.snapshot().iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![3, 4, 5]);
        s.push(ex(90));
        let (n, bytes, evicted) = s.stats();
        assert_eq!((n, bytes, evicted), (2, 100, 4));
        assert_eq!(s.since(5).len(), 1);
    }

    /// A run pushed at once is stored as if pushed one by one: the same ids and evictions,
    /// handed back in order, and sent to the feed's subscribers in order.
    #[test]
    fn a_run_is_stored_as_if_pushed_one_by_one() {
        let limits = StoreLimits {
            max_exchanges: 3,
            max_bytes: 100,
        };
        let (one, run) = (Store::new(limits), Store::new(limits));
        let (mut one_feed, mut run_feed) = (one.subscribe(), run.subscribe());
        let sizes = [10, 20, 90, 5, 5];
        for &n in &sizes {
            one.push(ex(n));
        }
        let mut exchanges: Vec<Exchange> = sizes.iter().map(|&n| ex(n)).collect();
        let mut stored = Vec::new();
        run.push_all(&mut exchanges, &mut stored);
        assert!(exchanges.is_empty());
        let ids = |exs: &[Arc<Exchange>]| exs.iter().map(|e| e.id).collect::<Vec<u64>>();
        assert_eq!(ids(&stored), vec![1, 2, 3, 4, 5]);
        assert_eq!(ids(&run.snapshot()), ids(&one.snapshot()));
        assert_eq!(ids(&run.snapshot()), vec![3, 4, 5]);
        assert_eq!(run.stats(), one.stats());
        let fed = |sub: &mut crate::Subscription| {
            std::iter::from_fn(|| sub.try_recv().ok().map(|e| e.id)).collect::<Vec<u64>>()
        };
        assert_eq!(fed(&mut run_feed), vec![1, 2, 3, 4, 5]);
        assert_eq!(fed(&mut one_feed), vec![1, 2, 3, 4, 5]);
    }

    /// Views asking for one exchange's dissection share one; the newest few hundred are kept,
    /// an older one is made again when asked.
    #[test]
    fn a_dissection_is_made_once_for_every_view() {
        let s = Store::new(StoreLimits::default());
        let a = s.push(ex(10));
        let b = s.push(ex(10));
        let da = s.dissected(&a);
        assert!(Arc::ptr_eq(&da, &s.dissected(&a)));
        assert!(!Arc::ptr_eq(&da, &s.dissected(&b)));
        // An exchange from elsewhere with the same id gets its own.
        let mut foreign = ex(11);
        foreign.id = a.id;
        let foreign = Arc::new(foreign);
        assert!(!Arc::ptr_eq(&da, &s.dissected(&foreign)));
        for _ in 0..SHARED_DISSECTIONS {
            let e = s.push(ex(10));
            s.dissected(&e);
        }
        assert_eq!(s.shared.lock().unwrap().order.len(), SHARED_DISSECTIONS);
        let again = s.dissected(&a);
        assert!(!Arc::ptr_eq(&da, &again));
        assert_eq!(again.verdict, da.verdict);
    }
}
