//! The latency phase: a paced feed of the realistic alert mix with probes, each probe's
//! time from produce to arrival at the consumer, and the same feed through a Klaxon with keyed
//! input.

use super::*;

/// How long the harness's own probe consumers wait in a fetch. tansu answers a fetch only when
/// `fetch.wait.max.ms` runs out, even if records arrive sooner (real Kafka answers at once), so
/// on tansu the wait sets a floor under every hop, and the instrument's is kept short. Not
/// shorter than this: tansu lists every stored batch of a partition on each fetch, so a probe
/// fetching every millisecond was the broker's busiest client, and its cost grew with the batches
/// on the contender's output. Klaxon's output holds ~2.7 × the passthrough's batches for the same
/// records (escalations are keyed by incident, so each goes to its incident's partition; the
/// passthrough's unkeyed records are packed into one partition per linger window), so at 1 ms the
/// instrument slowed the broker for Klaxon alone: at 500 alerts/s Klaxon's p99 climbed through
/// the feed to 112–250 ms with 1 ms, and reads 20–56 ms with 5 ms, while the passthrough's stayed
/// 13–16 ms with either (docs/benchmarks.md, 2026-12-06). (Klaxon and the passthrough keep
/// Klaxon's 10 ms: at 1 ms, the fetches of its two consumers kept the local broker busy enough
/// to triple the latency they were meant to cut.)
pub(super) const PROBE_FETCH_WAIT_MS: &str = "5";

/// The latency phase's feed, the same for both contenders: the realistic alert mix at `rate`
/// alerts/s for `seconds` (numbered from `first_id`, so none repeats an earlier phase's ids),
/// with every `probe_every`th alert a probe opening an incident of its own.
#[derive(Clone)]
pub(super) struct PacedFeed {
    pub(super) brokers: String,
    pub(super) rate: f64,
    pub(super) seconds: f64,
    pub(super) keys: usize,
    /// Every this many alerts is a probe (`--probe-every`, at least 1).
    pub(super) probe_every: usize,
    pub(super) first_id: usize,
    pub(super) show: bool,
    /// Written keyed for `kafka.input_keyed` (key and partition as `klaxon route-key` gives).
    pub(super) keyed: Option<Arc<Config>>,
}

/// One contender's latency phase: its report lines and the probes' p99 (ms), which the harness
/// sets side by side with the passthrough's on the same feed.
pub(super) struct Measured {
    pub(super) line: String,
    pub(super) p99_ms: f64,
}

impl PacedFeed {
    /// The feed through the contender whose topics `settings` name, and the report line for
    /// `who`: sent to its alerts topic, each probe timed to its arrival on its escalations topic
    /// (for Klaxon: the `incident.opened` event; for the passthrough: the record itself). It
    /// runs on a thread of its own, as a SIEM and a ticketing consumer would be processes of
    /// their own: sharing the contender's runtime, its timestamps would wait for the
    /// contender's busy worker threads.
    pub(super) async fn latency(
        &self,
        who: &str,
        settings: &crate::settings::Settings,
        group: &str,
    ) -> Result<Measured, String> {
        let feed = self.clone();
        let (input, output, group) = (
            settings.topics.alerts.clone(),
            settings.topics.escalations.clone(),
            group.to_string(),
        );
        let probes = tokio::task::spawn_blocking(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(feed.measure(&input, &output, &group))
        })
        .await
        .map_err(|e| e.to_string())??;
        let expected = ((self.rate * self.seconds) as usize).div_ceil(self.probe_every);
        let mut ms: Vec<f64> = probes.iter().map(|p| p.total_ms).collect();
        let fifths = worst_per_fifth(&ms);
        ms.sort_by(f64::total_cmp);
        let p99_ms = percentile(&ms, 0.99);
        let line = format!(
            "latency {who}: {:.0} alerts/s for {:.0} s, probes {}/{expected}: p50 {:.1} ms, p99 {p99_ms:.1} ms{}, max {:.1} ms (the worst of each fifth of the feed: {fifths} ms)\n{}",
            self.rate,
            self.seconds,
            ms.len(),
            percentile(&ms, 0.5),
            p99_rank(ms.len()),
            ms.last().copied().unwrap_or(f64::NAN),
            legs_line(who, &probes),
        );
        Ok(Measured { line, p99_ms })
    }

    /// [`PacedFeed::latency`] through a Klaxon in this process, its line followed by the share
    /// of Klaxon's own processing in the same span ([`own_share`]).
    pub(super) async fn klaxon_latency(
        &self,
        who: &str,
        klaxon: &RunningKlaxon,
        group: &str,
    ) -> Result<Measured, String> {
        let before = HistogramSnapshot::of(&klaxon.metrics.latency);
        let mut measured = self.latency(who, &klaxon.config.settings, group).await?;
        measured.line.push_str(&own_share(
            &before,
            &HistogramSnapshot::of(&klaxon.metrics.latency),
        ));
        Ok(measured)
    }

    /// Each probe's way through, in the order they were sent.
    pub(super) async fn measure(
        &self,
        input: &str,
        output: &str,
        group: &str,
    ) -> Result<Vec<ProbeTimes>, String> {
        let (rate, keys, first_id, probe_every) =
            (self.rate, self.keys, self.first_id, self.probe_every);
        let c: StreamConsumer = consumer(&self.brokers, group, "earliest", PROBE_FETCH_WAIT_MS)
            .create()
            .map_err(|e| e.to_string())?;
        c.subscribe(&[output]).map_err(|e| e.to_string())?;
        joined(&c).await;
        // Skip what earlier phases left on the topic.
        while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(300), c.recv()).await {}
        let p: FutureProducer = client(&self.brokers)
            .set("linger.ms", "1")
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .map_err(|e| e.to_string())?;
        let total = (rate * self.seconds) as usize;
        let probes = total.div_ceil(self.probe_every);
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let receiver = tokio::spawn(async move {
            let mut arrived: Vec<(usize, Instant, i64, Option<i64>)> = Vec::with_capacity(probes);
            loop {
                let m = tokio::select! {
                    _ = stop_rx.changed() => break,
                    m = c.recv() => m,
                };
                let (at, wall) = (Instant::now(), wall_ms());
                if let Some((k, created)) = m.ok().and_then(|m| {
                    let k = probe_number(m.payload().unwrap_or(&[]))?;
                    Some((k, m.timestamp().to_millis()))
                }) {
                    arrived.push((k, at, wall, created));
                    if arrived.len() >= probes {
                        break;
                    }
                }
            }
            arrived
        });
        let b = bar(self.show, total as u64, "latency");
        let mut sent: Vec<Option<(Instant, i64)>> = vec![None; probes];
        // When the broker acknowledged each probe alert (wall-clock ms), set by a task per probe.
        let acked: Arc<std::sync::Mutex<Vec<Option<i64>>>> =
            Arc::new(std::sync::Mutex::new(vec![None; probes]));
        let mut key_cache: std::collections::HashMap<usize, ([u8; 6], i32)> =
            std::collections::HashMap::new();
        let start = Instant::now();
        let mut i = 0usize;
        let mut ts = (Instant::now(), now_rfc3339(0));
        while i < total {
            let due = ((start.elapsed().as_secs_f64() * rate) as usize).min(total);
            if ts.0.elapsed() >= Duration::from_millis(100) {
                ts = (Instant::now(), now_rfc3339(0));
            }
            while i < due {
                let line = if i % probe_every == 0 {
                    let k = i / probe_every;
                    format!(
                        r#"{{"id":"probe-{k}","timestamp":"{}","incident_key":"probe-{first_id}-{k}","operator":"hz-ecom","title":"latency probe"}}"#,
                        ts.1
                    )
                } else {
                    alert_line(first_id + i, keys, &ts.1)
                };
                // Computed once per correlation key (a probe's is its own): decoding every line
                // here would load this thread, which also timestamps the arrivals.
                let key = match &self.keyed {
                    None => None,
                    Some(c) => {
                        let slot = (i % probe_every != 0).then_some((first_id + i) % keys.max(1));
                        match slot.and_then(|k| key_cache.get(&k)) {
                            Some(hit) => Some(*hit),
                            None => {
                                let got =
                                    crate::runtime::keyed::record_key(c, line.as_bytes()).ok();
                                if let (Some(k), Some(got)) = (slot, got) {
                                    key_cache.insert(k, got);
                                }
                                got
                            }
                        }
                    }
                };
                loop {
                    let mut record = FutureRecord::<[u8], _>::to(input).payload(line.as_bytes());
                    if let Some((k, partition)) = &key {
                        record = record.key(&k[..]).partition(*partition);
                    }
                    match p.send_result(record) {
                        Ok(delivery) => {
                            if i % probe_every == 0 {
                                let (k, acked) = (i / probe_every, acked.clone());
                                tokio::spawn(async move {
                                    if let Ok(Ok(_)) = delivery.await {
                                        let at = wall_ms();
                                        if let Some(slot) =
                                            acked.lock().ok().as_mut().and_then(|a| a.get_mut(k))
                                        {
                                            *slot = Some(at);
                                        }
                                    }
                                });
                            }
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                }
                if i % probe_every == 0 {
                    sent[i / probe_every] = Some((Instant::now(), wall_ms()));
                }
                i += 1;
            }
            b.set_position(i as u64);
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        b.finish_and_clear();
        // Stragglers get a few seconds; a probe that never arrives is reported by the count.
        let grace = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(grace);
        tokio::select! {
            _ = &mut grace => { let _ = stop_tx.send(true); }
            _ = async { while !receiver.is_finished() { tokio::time::sleep(Duration::from_millis(10)).await } } => {}
        }
        let arrived = receiver.await.map_err(|e| e.to_string())?;
        let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
        let mut times: Vec<(usize, ProbeTimes)> = arrived
            .into_iter()
            .filter_map(|(k, at, arrived_wall, created)| {
                let (t0, sent_wall) = (*sent.get(k)?)?;
                let acked = acked.get(k).copied().flatten();
                Some((
                    k,
                    ProbeTimes {
                        total_ms: at.saturating_duration_since(t0).as_secs_f64() * 1000.0,
                        to_broker_ms: acked.map(|a| (a - sent_wall) as f64),
                        contender_ms: acked.zip(created).map(|(a, c)| (c - a) as f64),
                        to_consumer_ms: created.map(|c| (arrived_wall - c) as f64),
                    },
                ))
            })
            .collect();
        times.sort_by_key(|&(k, _)| k);
        Ok(times.into_iter().map(|(_, t)| t).collect())
    }
}

/// One probe's way from the feed to the probe consumer. The total is timed on this process's
/// monotonic clock; the legs on the wall clock, to meet the timestamp the contender's producer
/// put on its output record (whole milliseconds, so a leg can read ±1 ms off).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct ProbeTimes {
    /// From the feed's send to the probe consumer's receipt of the contender's output.
    pub(super) total_ms: f64,
    /// From the feed's send to the broker's acknowledgement of the probe alert: the feed's
    /// producer and the broker, before any contender can see it.
    pub(super) to_broker_ms: Option<f64>,
    /// From that acknowledgement to the creation of the contender's output record (its
    /// `CreateTime`): the contender's own share — its fetch, its work and, for Klaxon through the
    /// repartition hop, the second hop.
    pub(super) contender_ms: Option<f64>,
    /// From the output record's creation to its receipt by the probe consumer.
    pub(super) to_consumer_ms: Option<f64>,
}

fn wall_ms() -> i64 {
    crate::runtime::clock::wall_now().0
}

/// The legs' medians and p99s, as a report line: where the time between the feed and the probe
/// consumer went. When the broker is saturated, the feed's own produce waits on it, and the
/// end-to-end figure says more about the broker than about the contender (docs/benchmarks.md).
pub(super) fn legs_line(who: &str, probes: &[ProbeTimes]) -> String {
    let leg = |f: fn(&ProbeTimes) -> Option<f64>| {
        let mut v: Vec<f64> = probes.iter().filter_map(f).collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            "n/a".to_string()
        } else {
            format!(
                "{:.0} / {:.0} ms",
                percentile(&v, 0.5),
                percentile(&v, 0.99)
            )
        }
    };
    format!(
        "  legs, p50 / p99: feed → broker's ack of the alert {}; ack → {who}'s output record created {}; created → probe consumer {}\n",
        leg(|p| p.to_broker_ms),
        leg(|p| p.contender_ms),
        leg(|p| p.to_consumer_ms),
    )
}

/// The highest latency in each fifth of the probes (in the order sent), `a / b / c / d / e`: a
/// stall shows as a run of high fifths, where the percentiles alone cannot tell it from noise.
pub(super) fn worst_per_fifth(in_order: &[f64]) -> String {
    let size = in_order.len().div_ceil(5).max(1);
    in_order
        .chunks(size)
        .map(|c| format!("{:.0}", c.iter().copied().fold(0.0, f64::max)))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The probe number in a record that carries a probe: the probe alert itself (passthrough) or
/// the `incident.opened` event of the probe's incident (Klaxon). Other events are ignored.
pub(super) fn probe_number(payload: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(payload).ok()?;
    if text.contains(r#""type":"#) && !text.contains(r#""type":"incident.opened""#) {
        return None;
    }
    let rest = &text[text.find(r#""probe-"#)? + 7..];
    rest[..rest.find('"')?].parse().ok()
}

/// Minimum, median and maximum (`values` is sorted in place; NaN for none).
pub(super) fn spread(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    match (values.first(), values.last()) {
        (Some(&lo), Some(&hi)) => {
            let median = values.get(values.len() / 2).copied().unwrap_or(lo);
            (lo, median, hi)
        }
        _ => (f64::NAN, f64::NAN, f64::NAN),
    }
}

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// How many of `n` probes were slower than their p99 ([`percentile`]'s rank), for the report
/// line: of 50 probes or fewer the p99 is their maximum, one outlier decides it, and a ratio of
/// two such p99s compares two single samples.
pub(super) fn p99_rank(n: usize) -> String {
    if n == 0 {
        return String::new();
    }
    let slower = n - 1 - ((n - 1) as f64 * 0.99).round() as usize;
    if slower == 0 {
        format!(" (the slowest of {n} probes: lower --probe-every or lengthen --latency-seconds for a p99)")
    } else {
        format!(" ({slower} of {n} slower)")
    }
}

/// A histogram's cumulative bucket counts `(upper bound in seconds, count)`, its sample count
/// and its sum: what is needed to describe the samples taken between two snapshots.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct HistogramSnapshot {
    buckets: Vec<(f64, u64)>,
    count: u64,
    sum: f64,
}

impl HistogramSnapshot {
    pub(super) fn of(h: &prometheus::Histogram) -> Self {
        use prometheus::core::Collector;
        let families = h.collect();
        let Some(m) = families.first().and_then(|f| f.get_metric().first()) else {
            return Self::default();
        };
        let hist = m.get_histogram();
        HistogramSnapshot {
            buckets: hist
                .get_bucket()
                .iter()
                .map(|b| (b.upper_bound(), b.cumulative_count()))
                .collect(),
            count: hist.get_sample_count(),
            sum: hist.get_sample_sum(),
        }
    }

    /// The samples taken since `earlier`: how many, their mean, and the bucket bound that the
    /// fraction `q` of them stay within (`None` when there were none, infinity when past the
    /// last bucket). Bucket bounds are what a Prometheus histogram can say.
    pub(super) fn since(&self, earlier: &Self, q: f64) -> Option<(u64, f64, f64)> {
        let n = self.count.checked_sub(earlier.count).filter(|&n| n > 0)?;
        let mean = (self.sum - earlier.sum) / n as f64;
        let wanted = (q * n as f64).ceil() as u64;
        let bound = self
            .buckets
            .iter()
            .zip(
                earlier
                    .buckets
                    .iter()
                    .map(|b| b.1)
                    .chain(std::iter::repeat(0)),
            )
            .find(|((_, now), then)| now.saturating_sub(*then) >= wanted)
            .map_or(f64::INFINITY, |((upper, _), _)| *upper);
        Some((n, mean, bound))
    }
}

/// One report line for Klaxon's own share of the latency phase, from its processing-latency
/// histogram: the end-to-end figures are mostly broker hops on the local broker.
pub(super) fn own_share(before: &HistogramSnapshot, after: &HistogramSnapshot) -> String {
    let ms = |s: f64| s * 1000.0;
    match (after.since(before, 0.5), after.since(before, 0.99)) {
        (Some((n, mean, p50)), Some((_, _, p99))) => format!(
            "  of which Klaxon's processor, from a batch's receipt to the broker's acknowledgement of its escalations ({n} batches): mean {:.1} ms, p50 ≤ {} ms, p99 ≤ {} ms (histogram bucket bounds)\n",
            ms(mean),
            ms(p50),
            ms(p99)
        ),
        _ => "  (no batches in Klaxon's processing-latency histogram)\n".to_string(),
    }
}

/// The latency phase's feed, written keyed, through a Klaxon with keyed input
/// (`kafka.input_keyed`) and then through a passthrough, each started for it on topics of its own
/// and stopped after.
pub(super) async fn keyed_latency(
    config: &Config,
    base: &crate::settings::Settings,
    prefix: &str,
    mut feed: PacedFeed,
    fetch_wait_ms: &str,
) -> Result<KeyedLatency, String> {
    let mut cfg = config.clone();
    cfg.settings = base.isolated(&format!("{prefix}.keyed"));
    cfg.settings.desk.enabled = false;
    cfg.settings.kafka.input_keyed = true;
    crate::runtime::kafka::ensure_topics(&cfg.settings)
        .await
        .map_err(|e| e.to_string())?;
    let klaxon = RunningKlaxon::start(Arc::new(cfg)).await?;
    feed.keyed = Some(klaxon.config.clone());
    let measured = feed
        .klaxon_latency(
            "klaxon with keyed input",
            &klaxon,
            &format!("{prefix}.keyed.latency"),
        )
        .await;
    let rerouted = klaxon.metrics.records_rerouted.get();
    klaxon.stop().await;
    let measured = measured?;

    // The baseline for it: the passthrough over the same keyed feed, alone in the process too.
    // A keyed feed spreads each moment's alerts over every partition in batches of one or two
    // records, where the unkeyed feed's producer packs them into one partition at a time; the
    // local broker, whose costs grow with a partition's stored batches, then falls behind
    // acknowledging the feed itself (docs/benchmarks.md, 2026-12-06). Compared with the
    // unkeyed passthrough, keyed Klaxon would be charged for the shape of its input.
    let pt_settings = base.isolated(&format!("{prefix}.keyed.pt"));
    let pt = Passthrough::start(&pt_settings, fetch_wait_ms).await?;
    pt.settled().await;
    let passthrough = feed
        .latency(
            "passthrough with the keyed feed",
            &pt_settings,
            &format!("{prefix}.keyed.pt.latency"),
        )
        .await;
    pt.stop().await;
    let passthrough = passthrough?;
    Ok(KeyedLatency {
        lines: format!(
            "{}  ({rerouted} re-routed)\n{}",
            measured.line, passthrough.line
        ),
        klaxon_p99_ms: measured.p99_ms,
        passthrough_p99_ms: passthrough.p99_ms,
    })
}

/// The keyed latency phase's report: Klaxon with keyed input, then the passthrough over the same
/// keyed feed.
pub(super) struct KeyedLatency {
    pub(super) lines: String,
    pub(super) klaxon_p99_ms: f64,
    pub(super) passthrough_p99_ms: f64,
}
