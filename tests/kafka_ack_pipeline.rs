//! The acknowledgement pipeline that lets the router and processor read on while the broker
//! acknowledges what they sent: what depends on an acknowledgement (storing offsets) runs only
//! after it, in the order the batches were sent, and never for records the broker did not take.
//! Against the real local broker (or `KAFKA_BROKERS`).

mod kafka_support;

use kafka_support::{brokers, unique};
use klaxon::runtime::producer::AckingProducer;
use klaxon::runtime::sink::{send, send_all, AckPipeline, OutRecord, Step};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

fn record(topic: &str, i: usize) -> OutRecord {
    OutRecord {
        topic: topic.to_string(),
        partition: Some(0),
        key: format!("k{i}").into_bytes(),
        payload: Some(format!("record {i}").into_bytes()),
        headers: Vec::new(),
    }
}

type Producer = AckingProducer<DefaultClientContext>;

fn producer(brokers: &str, message_timeout_ms: &str) -> Producer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", message_timeout_ms);
    AckingProducer::new(&config, DefaultClientContext).expect("producer")
}

/// A producer to the broker, a fresh topic with one record in it (the local broker creates
/// topics on first use), the shutdown signal's sender, and a pipeline on that producer.
async fn pipeline_on_a_new_topic(
    name: &str,
) -> (Producer, String, watch::Sender<bool>, AckPipeline) {
    let topic = unique(name);
    let p = producer(&brokers(), "30000");
    let (stop, shutdown) = watch::channel(false);
    send_all(&p, vec![record(&topic, 0)], &shutdown)
        .await
        .expect("first record acknowledged");
    let pipeline = AckPipeline::start(p.clone(), shutdown, 4);
    (p, topic, stop, pipeline)
}

#[tokio::test]
async fn follow_ups_run_after_the_acknowledgements_in_the_order_batches_were_sent() {
    let (p, topic, _stop, pipeline) = pipeline_on_a_new_topic("acks").await;
    let ran: Arc<Mutex<Vec<usize>>> = Arc::default();
    for step in 0..12 {
        let log = ran.clone();
        let after = Box::new(move |_| log.lock().expect("log").push(step));
        let records: Vec<OutRecord> = (0..50).map(|i| record(&topic, step * 100 + i)).collect();
        // Every third step is state: sent only once everything before it is acknowledged.
        let step_kind = if step % 3 == 2 {
            Step::SendAfter(records, after)
        } else {
            Step::Sent(send(&p, records).await, after)
        };
        pipeline.push(step_kind).await.expect("pipeline running");
    }
    pipeline.finish().await.expect("all acknowledged");
    assert_eq!(*ran.lock().expect("log"), (0..12).collect::<Vec<_>>());
}

#[tokio::test]
async fn nothing_that_depends_on_an_acknowledgement_runs_when_the_broker_never_gives_it() {
    // A broker that is not there: deliveries time out after a second.
    let p = producer("127.0.0.1:9", "1000");
    let (stop, shutdown) = watch::channel(false);
    let pipeline = AckPipeline::start(p.clone(), shutdown.clone(), 4);
    let stored = Arc::new(Mutex::new(false));
    let flag = stored.clone();
    let flight = send(&p, vec![record("nowhere", 1)]).await;
    pipeline
        .push(Step::Sent(
            flight,
            Box::new(move |_| *flag.lock().expect("flag") = true),
        ))
        .await
        .expect("pipeline running");
    // Shutdown while the record is unacknowledged: the pipeline gives up instead of retrying.
    stop.send(true).expect("shutdown signal");
    let result = pipeline.finish().await;
    assert!(
        result.is_err(),
        "an unacknowledged record must fail the pipeline"
    );
    assert!(
        !*stored.lock().expect("flag"),
        "offsets must not be stored for records the broker never acknowledged"
    );
}

#[tokio::test]
async fn a_step_is_told_when_its_own_records_were_acknowledged_not_when_the_steps_ahead_were() {
    let (p, topic, _stop, pipeline) = pipeline_on_a_new_topic("own-acks").await;
    let ran: Arc<Mutex<Vec<(usize, std::time::Instant)>>> = Arc::default();
    // The first step's record went to a broker that is not there: it is acknowledged only after
    // its delivery times out (1 s) and the pipeline re-sends it through its own producer.
    let nowhere = producer("127.0.0.1:9", "1000");
    let stuck = send(&nowhere, vec![record(&topic, 1)]).await;
    let log = ran.clone();
    pipeline
        .push(Step::Sent(
            stuck,
            Box::new(move |at| log.lock().expect("log").push((1, at))),
        ))
        .await
        .expect("pipeline running");
    // The second goes straight to the broker, which acknowledges it long before.
    let log = ran.clone();
    pipeline
        .push(Step::Sent(
            send(&p, vec![record(&topic, 2)]).await,
            Box::new(move |at| log.lock().expect("log").push((2, at))),
        ))
        .await
        .expect("pipeline running");
    pipeline.finish().await.expect("all acknowledged");
    drop(nowhere);

    let ran = ran.lock().expect("log");
    let order: Vec<usize> = ran.iter().map(|(step, _)| *step).collect();
    assert_eq!(order, [1, 2], "follow-ups still run in the order sent");
    assert!(
        ran[1].1 < ran[0].1,
        "the second step's records were acknowledged before the first's, and its follow-up must say so"
    );
}

#[tokio::test]
async fn the_producer_answers_each_record_with_where_the_broker_wrote_it() {
    let topic = unique("acking-producer");
    let p = producer(&brokers(), "30000");
    let send = |payload: &'static [u8]| {
        rdkafka::producer::BaseRecord::<[u8], [u8]>::to(&topic)
            .partition(0)
            .key(b"k")
            .payload(payload)
    };
    let first = p
        .send_acknowledged(send(b"1"), std::time::Duration::from_secs(10))
        .await
        .expect("acknowledged");
    let second = p
        .send_acknowledged(send(b"2"), std::time::Duration::from_secs(10))
        .await
        .expect("acknowledged");
    assert_eq!(first.0, 0, "the partition asked for");
    assert_eq!(
        second,
        (0, first.1 + 1),
        "the next offset of that partition"
    );
}
