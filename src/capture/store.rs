//! The bounded exchange store: keeps the newest exchanges within a count and a byte cap, and
//! publishes each new one to subscribers without ever blocking the producer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::{ConnEvent, Exchange};

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
}

/// The store. Cheap to share (`Arc<Store>`).
pub struct Store {
    limits: StoreLimits,
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Exchange>>,
    conn_tx: broadcast::Sender<Arc<ConnEvent>>,
}

/// A live feed of new exchanges. A subscriber that falls behind loses the oldest ones and is
/// told how many (`RecvError::Lagged`), the producer never waits.
pub type Subscription = broadcast::Receiver<Arc<Exchange>>;

impl Store {
    pub fn new(limits: StoreLimits) -> Arc<Store> {
        let (tx, _) = broadcast::channel(4096);
        let (conn_tx, _) = broadcast::channel(4096);
        Arc::new(Store {
            limits,
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                bytes: 0,
                next_id: 1,
                evicted: 0,
                conn_events: VecDeque::new(),
            }),
            tx,
            conn_tx,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves consistent data (every update is a
        // single push or pop), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an exchange, assigning its id; evicts the oldest beyond the caps.
    pub fn push(&self, mut ex: Exchange) -> Arc<Exchange> {
        let ex = {
            let mut g = self.lock();
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
        };
        // No receivers is fine.
        let _ = self.tx.send(ex.clone());
        ex
    }

    /// Records a connection event and publishes it (never waits).
    pub fn push_conn_event(&self, ev: ConnEvent) -> Arc<ConnEvent> {
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

    /// Subscribes to connection events pushed from now on.
    pub fn subscribe_conn_events(&self) -> broadcast::Receiver<Arc<ConnEvent>> {
        self.conn_tx.subscribe()
    }

    /// The connection events currently held, oldest first.
    pub fn conn_events(&self) -> Vec<Arc<ConnEvent>> {
        self.lock().conn_events.iter().cloned().collect()
    }

    /// Subscribes to exchanges pushed from now on.
    pub fn subscribe(&self) -> Subscription {
        self.tx.subscribe()
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

    /// (held, bytes held, evicted so far).
    pub fn stats(&self) -> (usize, usize, u64) {
        let g = self.lock();
        (g.items.len(), g.bytes, g.evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Status;

    fn ex(size: usize) -> Exchange {
        Exchange {
            id: 0,
            conn: 1,
            peer: "127.0.0.1:1".into(),
            client_id: None,
            api_key: 18,
            api_version: 0,
            correlation_id: 1,
            request: vec![0; size],
            response: None,
            request_at: 0,
            response_at: None,
            status: Status::NoResponse,
            notes: vec![],
            placement: None,
        }
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
}
