//! `MaxConcurrentTransforms`: up to that many invocations of the package in flight at once, their answers handed
//! back in the order the requests were submitted (so outputs are written exactly as a sequential run writes them).
//!
//! With a limit of 1 the request is answered on the calling thread when it is submitted; above 1, `limit` worker
//! threads of the caller's [`std::thread::scope`] answer them. At most `limit` requests (and so at most
//! `limit × MaxPayloadInMB` of request bodies) are held at any time.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::Scope;

use tern_runtime::{Package, RuntimeError};

/// A response body, or why the package refused the request.
pub(crate) type Answer = Result<Vec<u8>, Unanswered>;

/// A request that got no response.
#[derive(Debug)]
pub(crate) enum Unanswered {
    /// The package refused or failed it.
    Runtime(RuntimeError),
    /// The worker answering it stopped without an answer (it panicked: a bug, reported rather than re-raised).
    WorkerStopped,
}

struct Work {
    body: Vec<u8>,
    reply: SyncSender<Answer>,
}

enum Slot {
    Ready(Answer),
    Waiting(Receiver<Answer>),
}

/// Submits requests with a tag each and gives `(tag, answer)` back in submission order.
pub(crate) struct Dispatcher<'env, T> {
    package: &'env Package,
    content_type: &'env str,
    accept: &'env str,
    work: Option<SyncSender<Work>>,
    pending: VecDeque<(T, Slot)>,
    limit: usize,
}

fn invoke(package: &Package, body: &[u8], content_type: &str, accept: &str) -> Answer {
    package
        .invoke(body, content_type, accept)
        .map(|(response, _mime)| response)
        .map_err(Unanswered::Runtime)
}

impl<'env, T> Dispatcher<'env, T> {
    /// A dispatcher invoking `package` with `content_type` / `accept`, at most `limit` (≥ 1) requests in flight.
    /// Worker threads (when `limit` > 1) live in `scope` and end when the dispatcher is dropped.
    pub(crate) fn new<'scope>(
        scope: &'scope Scope<'scope, 'env>,
        package: &'env Package,
        content_type: &'env str,
        accept: &'env str,
        limit: usize,
    ) -> Self {
        let limit = limit.max(1);
        let work = (limit > 1).then(|| {
            let (sender, receiver) = mpsc::sync_channel::<Work>(limit);
            let receiver = Arc::new(Mutex::new(receiver));
            for _ in 0..limit {
                let receiver = Arc::clone(&receiver);
                scope.spawn(move || loop {
                    let next = receiver
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .recv();
                    let Ok(work) = next else { break };
                    // The submitter may have given up on the answer (an earlier request failed); that is fine.
                    let _ = work
                        .reply
                        .send(invoke(package, &work.body, content_type, accept));
                });
            }
            sender
        });
        Dispatcher {
            package,
            content_type,
            accept,
            work,
            pending: VecDeque::with_capacity(limit),
            limit,
        }
    }

    /// Whether `limit` requests are in flight (the next [`submit`](Self::submit) must wait for the oldest first).
    pub(crate) fn is_full(&self) -> bool {
        self.pending.len() >= self.limit
    }

    /// Sends `body` to the package. The caller takes answers out with [`next`](Self::next) first when
    /// [`is_full`](Self::is_full); submitting to a full dispatcher holds one more request than the limit.
    pub(crate) fn submit(&mut self, tag: T, body: Vec<u8>) {
        let slot = match &self.work {
            None => Slot::Ready(invoke(self.package, &body, self.content_type, self.accept)),
            Some(work) => {
                let (reply, answer) = mpsc::sync_channel(1);
                match work.send(Work { body, reply }) {
                    Ok(()) => Slot::Waiting(answer),
                    Err(_) => Slot::Ready(Err(Unanswered::WorkerStopped)),
                }
            }
        };
        self.pending.push_back((tag, slot));
    }

    /// The oldest request's answer: waits for it when `wait`, otherwise only if it is already there.
    pub(crate) fn next(&mut self, wait: bool) -> Option<(T, Answer)> {
        let (_, slot) = self.pending.front_mut()?;
        if let Slot::Waiting(receiver) = slot {
            let answer = if wait {
                receiver.recv().unwrap_or(Err(Unanswered::WorkerStopped))
            } else {
                match receiver.try_recv() {
                    Ok(answer) => answer,
                    Err(mpsc::TryRecvError::Empty) => return None,
                    Err(mpsc::TryRecvError::Disconnected) => Err(Unanswered::WorkerStopped),
                }
            };
            *slot = Slot::Ready(answer);
        }
        match self.pending.pop_front()? {
            (tag, Slot::Ready(answer)) => Some((tag, answer)),
            (_, Slot::Waiting(_)) => None,
        }
    }
}
