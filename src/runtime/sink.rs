//! Producing with acknowledgement: a batch of records is sent, and the call returns only when the
//! broker has acknowledged every one of them. Failed records are re-sent (the idempotent producer
//! keeps order and avoids duplicates within a session) until they succeed or shutdown begins.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;
use tokio::sync::watch;

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

/// The offset the broker gave each record, in order.
pub type Acks = Vec<i64>;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("shutdown before the broker acknowledged {0} record(s)")]
    Shutdown(usize),
}

/// Sends `records` and waits for every acknowledgement; retries failures with backoff.
pub async fn send_all<C: rdkafka::client::ClientContext + 'static>(
    producer: &FutureProducer<C>,
    records: &[OutRecord],
    shutdown: &watch::Receiver<bool>,
) -> Result<Acks, SinkError> {
    let mut acks = vec![-1i64; records.len()];
    let mut pending: Vec<usize> = (0..records.len()).collect();
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut futures = Vec::with_capacity(pending.len());
        for &i in &pending {
            let r = &records[i];
            loop {
                let mut rec: FutureRecord<'_, [u8], [u8]> =
                    FutureRecord::to(&r.topic).key(&r.key[..]);
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
                match producer.send_result(rec) {
                    Ok(f) => {
                        futures.push((i, f));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(Duration::from_millis(5)).await
                    }
                    Err((e, _)) => {
                        tracing::warn!(error = %e, topic = %r.topic, "produce failed; will retry");
                        break;
                    }
                }
            }
        }
        let mut failed = Vec::new();
        let sent: Vec<usize> = futures.iter().map(|(i, _)| *i).collect();
        for (i, f) in futures {
            match f.await {
                Ok(Ok(delivery)) => acks[i] = delivery.offset,
                Ok(Err((e, _))) => {
                    tracing::warn!(error = %e, topic = %records[i].topic, "delivery failed; will retry");
                    failed.push(i);
                }
                Err(_) => failed.push(i),
            }
        }
        failed.extend(pending.iter().filter(|i| !sent.contains(i)));
        if failed.is_empty() {
            return Ok(acks);
        }
        if *shutdown.borrow() {
            return Err(SinkError::Shutdown(failed.len()));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
        pending = failed;
    }
}
