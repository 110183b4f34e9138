//! Async access to an [`Outbox`] owned by a dedicated thread.
//!
//! The worker thread takes every request queued while it was busy and runs consecutive
//! appends as one [`Outbox::append_refs`] call: one `write` (and, per policy, one fsync)
//! for all of them (group commit). Requests are served in the order they were sent.
//! Under `FsyncPolicy::Interval`, the worker also syncs when the interval has passed
//! since unsynced data was written, so an idle outbox does not keep data unsynced.
//! When the last handle is dropped (or [`OutboxHandle::close`] is called) the worker
//! syncs and exits, releasing the directory lock.

use std::ops::Range;
use std::sync::mpsc;
use std::time::Instant;

use tokio::sync::{oneshot, watch};
use tracing::warn;

use super::{
    EventClass, LogMeta, NewRecord, Outbox, OutboxError, OutboxStats, Record, Result, check_payload,
};

/// An append waiting for the next group commit.
type QueuedAppend = (Vec<NewRecord>, oneshot::Sender<Result<Range<u64>>>);

/// Most requests served in one round (bounds the latency of the first one).
const MAX_ROUND: usize = 4096;

enum Command {
    Append {
        records: Vec<NewRecord>,
        reply: oneshot::Sender<Result<Range<u64>>>,
    },
    Ack {
        upto: u64,
        reply: oneshot::Sender<Result<()>>,
    },
    Pending {
        after: u64,
        max_records: usize,
        max_bytes: usize,
        reply: oneshot::Sender<Result<Vec<Record>>>,
    },
    Stats {
        reply: oneshot::Sender<OutboxStats>,
    },
    ContinueAfter {
        seq: u64,
        reply: oneshot::Sender<Result<u64>>,
    },
    Sync {
        reply: oneshot::Sender<Result<()>>,
    },
    Close {
        reply: oneshot::Sender<Result<()>>,
    },
}

/// Cloneable async handle to an outbox running on its own thread.
#[derive(Clone, Debug)]
pub struct OutboxHandle {
    tx: mpsc::Sender<Command>,
    newest: watch::Receiver<u64>,
}

impl OutboxHandle {
    /// Moves `outbox` onto a new thread named `languard-outbox`.
    pub fn spawn(outbox: Outbox) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let (newest_tx, newest) = watch::channel(outbox.newest_seq());
        std::thread::Builder::new()
            .name("languard-outbox".into())
            .spawn(move || worker(outbox, rx, newest_tx))
            .map_err(|e| OutboxError::io("spawn outbox thread", e))?;
        Ok(OutboxHandle { tx, newest })
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| OutboxError::Closed)?;
        rx.await.map_err(|_| OutboxError::Closed)
    }

    /// Appends one record; resolves to its seq once it is written (see [`Outbox::append`]).
    pub async fn append(
        &self,
        class: EventClass,
        payload: Vec<u8>,
        log_meta: Option<LogMeta>,
    ) -> Result<u64> {
        let records = vec![NewRecord {
            class,
            payload,
            log_meta,
        }];
        let range = self
            .call(|reply| Command::Append { records, reply })
            .await??;
        Ok(range.start)
    }

    /// Appends records contiguously; resolves to their seqs.
    pub async fn append_batch(&self, records: Vec<NewRecord>) -> Result<Range<u64>> {
        self.call(|reply| Command::Append { records, reply })
            .await?
    }

    /// See [`Outbox::ack`].
    pub async fn ack(&self, upto: u64) -> Result<()> {
        self.call(|reply| Command::Ack { upto, reply }).await?
    }

    /// See [`Outbox::pending`].
    pub async fn pending(
        &self,
        after: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>> {
        self.call(|reply| Command::Pending {
            after,
            max_records,
            max_bytes,
            reply,
        })
        .await?
    }

    /// See [`Outbox::continue_after`]. Runs on the worker, so no append can slip in
    /// between the check and the renumbering.
    pub async fn continue_after(&self, seq: u64) -> Result<u64> {
        self.call(|reply| Command::ContinueAfter { seq, reply })
            .await?
    }

    pub async fn stats(&self) -> Result<OutboxStats> {
        self.call(|reply| Command::Stats { reply }).await
    }

    /// Forces an fsync of written records.
    pub async fn sync(&self) -> Result<()> {
        self.call(|reply| Command::Sync { reply }).await?
    }

    /// Syncs and stops the worker (other clones then get [`OutboxError::Closed`]).
    pub async fn close(self) -> Result<()> {
        self.call(|reply| Command::Close { reply }).await?
    }

    /// The newest appended seq; changes whenever records are appended.
    pub fn watch_newest(&self) -> watch::Receiver<u64> {
        self.newest.clone()
    }
}

fn worker(mut outbox: Outbox, rx: mpsc::Receiver<Command>, newest: watch::Sender<u64>) {
    let mut round = Vec::new();
    loop {
        let first = match outbox.sync_deadline() {
            Some(deadline) => {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(c) => c,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Err(e) = outbox.sync_if_due() {
                            warn!(error = %e, "outbox interval sync failed");
                        }
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            None => match rx.recv() {
                Ok(c) => c,
                Err(_) => break,
            },
        };
        round.push(first);
        while round.len() < MAX_ROUND {
            match rx.try_recv() {
                Ok(c) => round.push(c),
                Err(_) => break,
            }
        }
        let mut group: Vec<QueuedAppend> = Vec::new();
        let mut closing = None;
        for cmd in round.drain(..) {
            if closing.is_some() {
                // Requests queued behind a close are dropped: their callers see `Closed`.
                continue;
            }
            match cmd {
                Command::Append { records, reply } => {
                    match records
                        .iter()
                        .try_for_each(|r| check_payload(r.payload.len()))
                    {
                        Ok(()) => group.push((records, reply)),
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                    continue;
                }
                other => {
                    commit(&mut outbox, &mut group, &newest);
                    match other {
                        Command::Append { .. } => {}
                        Command::Ack { upto, reply } => {
                            let _ = reply.send(outbox.ack(upto));
                        }
                        Command::Pending {
                            after,
                            max_records,
                            max_bytes,
                            reply,
                        } => {
                            let _ = reply.send(outbox.pending(after, max_records, max_bytes));
                        }
                        Command::Stats { reply } => {
                            let _ = reply.send(outbox.stats());
                        }
                        Command::ContinueAfter { seq, reply } => {
                            let result = outbox.continue_after(seq);
                            publish_newest(&outbox, &newest);
                            let _ = reply.send(result);
                        }
                        Command::Sync { reply } => {
                            let _ = reply.send(outbox.sync());
                        }
                        Command::Close { reply } => closing = Some(reply),
                    }
                }
            }
        }
        commit(&mut outbox, &mut group, &newest);
        if let Some(reply) = closing {
            // Release the outbox (and its directory lock) before answering, so a caller
            // may reopen the directory as soon as `close` returns.
            let result = outbox.sync();
            drop(outbox);
            let _ = reply.send(result);
            return;
        }
    }
    if let Err(e) = outbox.sync() {
        warn!(error = %e, "outbox final sync failed");
    }
}

/// Appends every queued request with one write and answers each with its own range.
fn commit(outbox: &mut Outbox, group: &mut Vec<QueuedAppend>, newest: &watch::Sender<u64>) {
    if group.is_empty() {
        return;
    }
    let refs: Vec<(EventClass, &[u8], Option<LogMeta>)> = group
        .iter()
        .flat_map(|(recs, _)| {
            recs.iter()
                .map(|r| (r.class, r.payload.as_slice(), r.log_meta))
        })
        .collect();
    let result = outbox.append_refs(&refs);
    drop(refs);
    // Watchers learn of new records before the appenders return.
    publish_newest(outbox, newest);
    match result {
        Ok(range) => {
            let mut next = range.start;
            for (recs, reply) in group.drain(..) {
                let end = next + recs.len() as u64;
                let _ = reply.send(Ok(next..end));
                next = end;
            }
        }
        Err(e) => {
            for (_, reply) in group.drain(..) {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// Tells watchers the newest seq, if it changed.
fn publish_newest(outbox: &Outbox, newest: &watch::Sender<u64>) {
    newest.send_if_modified(|n| {
        let changed = *n != outbox.newest_seq();
        *n = outbox.newest_seq();
        changed
    });
}
