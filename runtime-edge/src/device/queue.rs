//! A bounded queue between the stages of the device loop. When full, [`QueuePolicy::Block`] makes the producer wait
//! (back-pressure) and [`QueuePolicy::DropOldest`] discards the oldest waiting item (fresh data wins, as a camera or
//! sensor loop wants). Its length never exceeds its capacity, so memory stays bounded whatever a slow stage does.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

/// What a full queue does with a new item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueuePolicy {
    /// Wait for room.
    Block,
    /// Drop the oldest waiting item to make room.
    DropOldest,
}

impl QueuePolicy {
    /// `block` or `drop-oldest`.
    pub fn parse(text: &str) -> Option<QueuePolicy> {
        match text {
            "block" => Some(QueuePolicy::Block),
            "drop-oldest" | "drop_oldest" => Some(QueuePolicy::DropOldest),
            _ => None,
        }
    }
}

/// What a queue saw over its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    pub capacity: usize,
    /// The longest the queue ever was (never more than `capacity`).
    pub max_len: usize,
    pub pushed: u64,
    pub dropped: u64,
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
    stats: QueueStats,
}

/// A bounded multi-producer, multi-consumer queue.
pub struct BoundedQueue<T> {
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    policy: QueuePolicy,
}

impl<T> BoundedQueue<T> {
    /// A queue of `capacity` items (at least 1).
    pub fn new(capacity: usize, policy: QueuePolicy) -> Self {
        let capacity = capacity.max(1);
        BoundedQueue {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity),
                closed: false,
                stats: QueueStats {
                    capacity,
                    ..QueueStats::default()
                },
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            policy,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `item` by the queue's policy. Returns false (dropping `item`) once the queue is closed.
    pub fn push(&self, item: T) -> bool {
        let mut state = self.lock();
        loop {
            if state.closed {
                return false;
            }
            if state.items.len() < state.stats.capacity {
                break;
            }
            match self.policy {
                QueuePolicy::DropOldest => {
                    state.items.pop_front();
                    state.stats.dropped += 1;
                    break;
                }
                QueuePolicy::Block => {
                    state = self.not_full.wait(state).unwrap_or_else(|p| p.into_inner());
                }
            }
        }
        state.items.push_back(item);
        state.stats.pushed += 1;
        state.stats.max_len = state.stats.max_len.max(state.items.len());
        drop(state);
        self.not_empty.notify_one();
        true
    }

    /// The oldest item, waiting for one; `None` once the queue is closed and empty.
    pub fn pop(&self) -> Option<T> {
        let mut state = self.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                drop(state);
                self.not_full.notify_one();
                return Some(item);
            }
            if state.closed {
                return None;
            }
            state = self
                .not_empty
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// No more pushes; consumers drain what is left.
    pub fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    /// Closes the queue and discards what is waiting (stopping after an error).
    pub fn abandon(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.items.clear();
        drop(state);
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> QueueStats {
        self.lock().stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn drop_oldest_keeps_the_newest_items() {
        let queue = BoundedQueue::new(3, QueuePolicy::DropOldest);
        for i in 0..10 {
            assert!(queue.push(i));
        }
        queue.close();
        let left: Vec<i32> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(left, vec![7, 8, 9]);
        let stats = queue.stats();
        assert_eq!((stats.max_len, stats.pushed, stats.dropped), (3, 10, 7));
        assert!(!queue.push(1), "a closed queue refuses items");
    }

    #[test]
    fn block_waits_for_the_consumer_and_loses_nothing() {
        let queue = Arc::new(BoundedQueue::new(2, QueuePolicy::Block));
        let producer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    queue.push(i);
                }
                queue.close();
            })
        };
        let received: Vec<i32> = std::iter::from_fn(|| queue.pop()).collect();
        producer.join().unwrap();
        assert_eq!(received, (0..100).collect::<Vec<_>>());
        let stats = queue.stats();
        assert!(stats.max_len <= 2);
        assert_eq!(stats.dropped, 0);
    }
}
