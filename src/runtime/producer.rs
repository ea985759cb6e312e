//! Klaxon's producer (the router, the processor and its changelog, the desk, delivery):
//! librdkafka's, with a future per record for the broker's acknowledgement (the partition and
//! offset it gave the record), as rdkafka's `FutureProducer` offers — but with a polling thread
//! that does not spin.
//!
//! rdkafka 0.39's producers are polled by a thread that waits 100 ms at a time and hands
//! librdkafka the time left in whole milliseconds, so the last fraction of a millisecond of
//! every wait becomes repeated 0 ms polls: ~1 ms of spinning every 100 ms, 0.83 % of a core per
//! producer, idle or busy (measured per thread; docs/benchmarks.md). This thread waits a second
//! at a time. Acknowledgements are not delayed by it: a wait returns as soon as one arrives.

use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::{ClientConfig, FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Message, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::statistics::Statistics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long the polling thread waits for an event at a time: a stopped producer's thread (and
/// librdkafka handle) lives at most this much longer.
const POLL_WAIT: Duration = Duration::from_secs(1);

/// The broker's answer for one record: the partition and offset it was written at, or why it
/// was not.
pub type Delivered = Result<(i32, i64), KafkaError>;

/// The acknowledgement of one record sent; `Err(_)` (the sender dropped) when the producer went
/// away before librdkafka reported on it.
pub type Ack = oneshot::Receiver<Delivered>;

/// A producer whose sends each return an [`Ack`]. Cloning shares it; the polling thread stops
/// once the last clone is dropped.
pub struct AckingProducer<C: ClientContext + 'static> {
    inner: Arc<Shared<C>>,
}

impl<C: ClientContext + 'static> Clone for AckingProducer<C> {
    fn clone(&self) -> Self {
        AckingProducer {
            inner: self.inner.clone(),
        }
    }
}

struct Shared<C: ClientContext + 'static> {
    producer: Arc<BaseProducer<AckContext<C>>>,
    stop: Arc<AtomicBool>,
}

impl<C: ClientContext + 'static> Drop for Shared<C> {
    /// The thread notices within [`POLL_WAIT`] and drops its handle on the producer; nothing
    /// waits for it here (a drop in an async task must not block).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl<C: ClientContext + 'static> AckingProducer<C> {
    /// A producer from `config`, reporting to `context` (statistics, errors, logs).
    pub fn new(config: &ClientConfig, context: C) -> KafkaResult<Self> {
        let producer = Arc::new(BaseProducer::from_config_and_context(
            config,
            AckContext { wrapped: context },
        )?);
        let stop = Arc::new(AtomicBool::new(false));
        let (polled, stopped) = (producer.clone(), stop.clone());
        std::thread::Builder::new()
            .name("klaxon producer poll".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    polled.poll(POLL_WAIT);
                }
            })
            .map_err(|e| KafkaError::ClientCreation(format!("producer polling thread: {e}")))?;
        Ok(AckingProducer {
            inner: Arc::new(Shared { producer, stop }),
        })
    }

    /// Hands one record to librdkafka. On a refusal (its queue full, a bad partition…) the
    /// error comes back at once with the record, which is not sent.
    // rdkafka's own `send` has this shape: the record comes back so that it can be retried.
    #[allow(clippy::type_complexity, clippy::result_large_err)]
    pub fn send<'a, K, P>(
        &self,
        record: BaseRecord<'a, K, P, ()>,
    ) -> Result<Ack, (KafkaError, BaseRecord<'a, K, P, ()>)>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let (tx, rx) = oneshot::channel();
        match self.inner.producer.send(with_opaque(record, Box::new(tx))) {
            Ok(()) => Ok(rx),
            Err((e, back)) => Err((e, with_opaque(back, ()))),
        }
    }

    /// Sends one record and waits for the broker's answer. A full queue is waited on for up to
    /// `queue_timeout`, as rdkafka's `FutureProducer::send` does; `KafkaError::Canceled` if the
    /// producer went away before answering.
    pub async fn send_acknowledged<K, P>(
        &self,
        mut record: BaseRecord<'_, K, P, ()>,
        queue_timeout: Duration,
    ) -> Delivered
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let until = Instant::now() + queue_timeout;
        let ack = loop {
            match self.send(record) {
                Ok(ack) => break ack,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < until =>
                {
                    record = back;
                    tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                }
                Err((e, _)) => return Err(e),
            }
        };
        ack.await.unwrap_or(Err(KafkaError::Canceled))
    }
}

/// How long a send waits before trying a full queue again (as the acknowledgement pipeline).
pub const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// The same record with another delivery opaque.
fn with_opaque<'a, K, P, A, B>(
    r: BaseRecord<'a, K, P, A>,
    delivery_opaque: B,
) -> BaseRecord<'a, K, P, B>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
    A: rdkafka::util::IntoOpaque,
    B: rdkafka::util::IntoOpaque,
{
    BaseRecord {
        topic: r.topic,
        partition: r.partition,
        payload: r.payload,
        key: r.key,
        timestamp: r.timestamp,
        headers: r.headers,
        delivery_opaque,
    }
}

/// The producer's context: answers each record's [`Ack`], and passes everything else to the
/// context it wraps.
struct AckContext<C> {
    wrapped: C,
}

impl<C: ClientContext> ClientContext for AckContext<C> {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = C::ENABLE_REFRESH_OAUTH_TOKEN;

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.wrapped.log(level, fac, log_message);
    }

    fn stats(&self, statistics: Statistics) {
        self.wrapped.stats(statistics);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        self.wrapped.stats_raw(statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.wrapped.error(error, reason);
    }

    fn generate_oauth_token(
        &self,
        oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        self.wrapped.generate_oauth_token(oauthbearer_config)
    }
}

impl<C: ClientContext + 'static> ProducerContext for AckContext<C> {
    type DeliveryOpaque = Box<oneshot::Sender<Delivered>>;

    fn delivery(&self, result: &DeliveryResult<'_>, tx: Self::DeliveryOpaque) {
        let answer = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.clone()),
        };
        // The waiter may have gone (shutdown); nothing is owed to it then.
        let _ = tx.send(answer);
    }
}
