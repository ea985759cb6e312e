//! Producing with acknowledgement.
//!
//! [`send_all`] sends a batch and returns when the broker has acknowledged every record. The
//! stages do not wait like that on their hot path: they hand each batch to the [`AckPipeline`]
//! and go on with the next one. Each batch's acks are awaited in the background as they come,
//! and what depends on them (storing offsets, counting escalations) runs in the order the
//! batches were sent, told when the batch's own records were acknowledged. Waiting per batch put
//! a produce round trip (plus `linger.ms`) between every two fetches, and the once-a-second state
//! flush stalled the stream for as long as the broker took to acknowledge it.
//!
//! Failed records are re-sent (the idempotent producer keeps order and avoids duplicates within
//! a session) until they succeed or shutdown begins.

use super::producer::{Ack, AckingProducer, QUEUE_FULL_PAUSE};
use crate::telemetry::ratelimit::CLIENT_ERRORS;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// One record to produce.
#[derive(Clone, Debug)]
pub struct OutRecord {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Vec<u8>,
    /// `None` is a tombstone.
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(&'static str, Vec<u8>)>,
}

impl OutRecord {
    /// What the record holds in memory until acknowledged (payload, key, headers, topic name);
    /// the producer keeps a copy of about the same size in its own queue meanwhile.
    pub fn bytes(&self) -> usize {
        self.payload.as_ref().map_or(0, Vec::len)
            + self.key.len()
            + self.topic.len()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + std::mem::size_of::<OutRecord>()
    }
}

/// The offset the broker gave each record, in order.
pub type Acks = Vec<i64>;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("shutdown before the broker acknowledged {0} record(s)")]
    Shutdown(usize),
    #[error("the acknowledgement pipeline has stopped")]
    PipelineStopped,
}

/// Records handed to the producer whose acknowledgements are still to come.
pub struct InFlight {
    records: Vec<OutRecord>,
    futures: Vec<(usize, Ack)>,
    /// Records the producer refused outright; they are re-sent with the failed ones.
    refused: Vec<usize>,
    /// The room these records take in their pipeline's byte budget, given back when the
    /// flight is dropped (acknowledged, or given up).
    _room: Option<OwnedSemaphorePermit>,
}

/// Hands `records` to the producer without waiting for the broker (only for room in the
/// producer's queue).
pub async fn send<C: rdkafka::client::ClientContext + 'static>(
    producer: &AckingProducer<C>,
    records: Vec<OutRecord>,
) -> InFlight {
    let mut flight = InFlight {
        futures: Vec::with_capacity(records.len()),
        refused: Vec::new(),
        records,
        _room: None,
    };
    let all: Vec<usize> = (0..flight.records.len()).collect();
    flight.enqueue(producer, &all).await;
    flight
}

impl InFlight {
    async fn enqueue<C: rdkafka::client::ClientContext + 'static>(
        &mut self,
        producer: &AckingProducer<C>,
        which: &[usize],
    ) {
        for &i in which {
            let r = &self.records[i];
            loop {
                let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&r.topic).key(&r.key[..]);
                if let Some(p) = &r.payload {
                    rec = rec.payload(&p[..]);
                }
                if let Some(p) = r.partition {
                    rec = rec.partition(p);
                }
                if !r.headers.is_empty() {
                    let mut h = OwnedHeaders::new_with_capacity(r.headers.len());
                    for (k, v) in &r.headers {
                        h = h.insert(Header {
                            key: k,
                            value: Some(&v[..]),
                        });
                    }
                    rec = rec.headers(h);
                }
                match producer.send(rec) {
                    Ok(ack) => {
                        self.futures.push((i, ack));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(QUEUE_FULL_PAUSE).await
                    }
                    Err((e, _)) => {
                        if CLIENT_ERRORS.admit(("produce failed; will retry", "produce")) {
                            tracing::warn!(error = %e, topic = %r.topic, "produce failed; will retry");
                        }
                        self.refused.push(i);
                        break;
                    }
                }
            }
        }
    }

    /// Waits for every acknowledgement, re-sending failures with backoff.
    pub async fn acknowledged<C: rdkafka::client::ClientContext + 'static>(
        mut self,
        producer: &AckingProducer<C>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Acks, SinkError> {
        let mut acks = vec![-1i64; self.records.len()];
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut failed = std::mem::take(&mut self.refused);
            for (i, f) in std::mem::take(&mut self.futures) {
                match f.await {
                    Ok(Ok((_, offset))) => acks[i] = offset,
                    Ok(Err(e)) => {
                        if CLIENT_ERRORS.admit(("delivery failed; will retry", "delivery")) {
                            tracing::warn!(error = %e, topic = %self.records[i].topic, "delivery failed; will retry");
                        }
                        failed.push(i);
                    }
                    Err(_) => failed.push(i),
                }
            }
            if failed.is_empty() {
                return Ok(acks);
            }
            if *shutdown.borrow() {
                return Err(SinkError::Shutdown(failed.len()));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            failed.sort_unstable();
            self.enqueue(producer, &failed).await;
        }
    }
}

/// Sends `records` and waits for every acknowledgement; retries failures with backoff.
pub async fn send_all<C: rdkafka::client::ClientContext + 'static>(
    producer: &AckingProducer<C>,
    records: Vec<OutRecord>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Acks, SinkError> {
    send(producer, records)
        .await
        .acknowledged(producer, shutdown)
        .await
}

/// What runs once a step's records, and every step's before it, are acknowledged: store the
/// offsets they cover, count them. It is given the instant the step's *own* records were
/// acknowledged, which can be well before the steps ahead of it were (a state flush being
/// acknowledged does not delay the escalations sent after it): what a latency metric wants.
pub type AfterAck = Box<dyn FnOnce(Instant) + Send>;

/// One unit of the pipeline. Steps complete strictly in the order they were pushed.
pub enum Step {
    /// Records already sent; wait for their acks.
    Sent(InFlight, AfterAck),
    /// Records to send only once everything before them is acknowledged, then wait for them.
    /// The processor's state goes this way: durable state must never run ahead of the
    /// escalations it accounts for.
    SendAfter(Vec<OutRecord>, AfterAck),
}

/// A step as the pipeline's task holds it: sent records are already being awaited by a task of
/// their own, which answers with the instant they were acknowledged.
enum Queued {
    Awaited(JoinHandle<Result<Instant, SinkError>>, AfterAck),
    SendAfter(Vec<OutRecord>, AfterAck, Option<OwnedSemaphorePermit>),
}

/// How many bytes of records a pipeline lets wait for their acknowledgements (see
/// [`AckPipeline::send`]): 16 MiB, some 16,000 escalations or 20,000 state records, is many
/// round trips' worth at the local broker's pace, so the stream does not wait on it; a
/// catch-up of 200,000 incidents, which queued its whole first state flush and every event of
/// the backlog (and the producer a copy of each), no longer holds hundreds of MiB.
pub const MAX_BYTES_IN_FLIGHT: usize = 16 << 20;

/// Starts awaiting a flight's acknowledgements (re-sending failures) in a task of its own.
type AwaitAcks = Box<dyn Fn(InFlight) -> JoinHandle<Result<Instant, SinkError>> + Send + Sync>;

/// Waits for acknowledgements in the background so a stage can fetch and process its next batch
/// while the last one is on the wire, and runs each step's follow-up in push order. At most
/// `depth` steps wait; a stage pushing more waits for room (back pressure).
pub struct AckPipeline {
    tx: mpsc::Sender<Queued>,
    /// Bytes of records not yet acknowledged, in [`MAX_BYTES_IN_FLIGHT`] permits.
    room: Arc<Semaphore>,
    task: JoinHandle<Result<(), SinkError>>,
    await_acks: AwaitAcks,
}

impl AckPipeline {
    pub fn start<C: rdkafka::client::ClientContext + 'static>(
        producer: AckingProducer<C>,
        shutdown: watch::Receiver<bool>,
        depth: usize,
    ) -> AckPipeline {
        let await_acks: AwaitAcks = {
            let (producer, shutdown) = (producer.clone(), shutdown.clone());
            Box::new(move |flight: InFlight| {
                let (producer, shutdown) = (producer.clone(), shutdown.clone());
                tokio::spawn(async move {
                    flight.acknowledged(&producer, &shutdown).await?;
                    Ok(Instant::now())
                })
            })
        };
        let (tx, mut rx) = mpsc::channel::<Queued>(depth.max(1));
        let task = tokio::spawn(async move {
            while let Some(step) = rx.recv().await {
                let (acknowledged_at, after) = match step {
                    Queued::Awaited(acks, after) => {
                        (acks.await.map_err(|_| SinkError::PipelineStopped)??, after)
                    }
                    Queued::SendAfter(records, after, room) => {
                        let mut flight = send(&producer, records).await;
                        flight._room = room;
                        flight.acknowledged(&producer, &shutdown).await?;
                        (Instant::now(), after)
                    }
                };
                after(acknowledged_at);
            }
            Ok(())
        });
        AckPipeline {
            tx,
            room: Arc::new(Semaphore::new(MAX_BYTES_IN_FLIGHT)),
            task,
            await_acks,
        }
    }

    /// Waits until the records' bytes fit in the budget of records not yet acknowledged (a
    /// step larger than the whole budget waits for all of it), and takes that room.
    async fn room_for(&self, records: &[OutRecord]) -> Result<OwnedSemaphorePermit, SinkError> {
        let bytes: usize = records.iter().map(OutRecord::bytes).sum();
        let n = u32::try_from(bytes.clamp(1, MAX_BYTES_IN_FLIGHT)).unwrap_or(u32::MAX);
        self.room
            .clone()
            .acquire_many_owned(n)
            .await
            .map_err(|_| SinkError::PipelineStopped)
    }

    /// [`send`], once the records fit in this pipeline's budget of bytes not yet acknowledged
    /// ([`MAX_BYTES_IN_FLIGHT`]): back pressure by memory, not only by the number of steps. Push
    /// the flight with [`Step::Sent`]; its room is given back when it is acknowledged.
    pub async fn send<C: rdkafka::client::ClientContext + 'static>(
        &self,
        producer: &AckingProducer<C>,
        records: Vec<OutRecord>,
    ) -> Result<InFlight, SinkError> {
        let room = self.room_for(&records).await?;
        let mut flight = send(producer, records).await;
        flight._room = Some(room);
        Ok(flight)
    }

    /// Queues a step. Fails once the pipeline has stopped (it gave up at shutdown).
    pub async fn push(&self, step: Step) -> Result<(), SinkError> {
        let queued = match step {
            Step::Sent(flight, after) => Queued::Awaited((self.await_acks)(flight), after),
            Step::SendAfter(records, after) => {
                let room = self.room_for(&records).await?;
                Queued::SendAfter(records, after, Some(room))
            }
        };
        self.tx
            .send(queued)
            .await
            .map_err(|_| SinkError::PipelineStopped)
    }

    /// Waits until every queued step is acknowledged and has run its follow-up.
    pub async fn finish(self) -> Result<(), SinkError> {
        drop(self.tx);
        self.task
            .await
            .map_err(|_| SinkError::PipelineStopped)
            .and_then(|r| r)
    }
}
