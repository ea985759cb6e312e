use super::{
    cpu_model, legs_line, own_share, p99_rank, percentile, spread, worst_per_fifth,
    HistogramSnapshot, ProbeTimes,
};

#[test]
fn the_latency_share_describes_only_the_samples_of_the_window() {
    let h = prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new("t", "t").buckets(vec![0.001, 0.005, 0.01, 0.05]),
    )
    .unwrap();
    h.observe(0.04); // before the window: must not count
    let before = HistogramSnapshot::of(&h);
    for _ in 0..98 {
        h.observe(0.0008);
    }
    h.observe(0.007);
    h.observe(0.2);
    let after = HistogramSnapshot::of(&h);
    let (n, mean, p50) = after.since(&before, 0.5).unwrap();
    assert_eq!(n, 100);
    assert!((mean - (98.0 * 0.0008 + 0.007 + 0.2) / 100.0).abs() < 1e-12);
    assert_eq!(p50, 0.001);
    assert_eq!(after.since(&before, 0.99).unwrap().2, 0.01);
    assert_eq!(after.since(&before, 1.0).unwrap().2, f64::INFINITY);
    assert_eq!(after.since(&after, 0.5), None);
    let line = own_share(&before, &after);
    assert!(
        line.contains("(100 batches)") && line.contains("p99 ≤ 10 ms"),
        "{line}"
    );
}

#[test]
fn spread_reports_min_median_max_of_the_rounds() {
    assert_eq!(spread(&mut [1.1, 0.7, 0.9]), (0.7, 0.9, 1.1));
    // An even count takes the upper of the two middle values (a measured figure, not a mean).
    assert_eq!(spread(&mut [1.0, 0.8, 0.9, 1.2]), (0.8, 1.0, 1.2));
    let (lo, mid, hi) = spread(&mut []);
    assert!(lo.is_nan() && mid.is_nan() && hi.is_nan());
}

#[test]
fn a_stall_in_the_feed_shows_in_the_worst_of_its_fifths() {
    let mut probes = vec![10.0; 20];
    probes[9] = 900.0;
    assert_eq!(worst_per_fifth(&probes), "10 / 10 / 900 / 10 / 10");
    assert_eq!(worst_per_fifth(&[7.0, 3.0]), "7 / 3");
    assert_eq!(worst_per_fifth(&[]), "");
}

#[test]
fn a_p99_of_too_few_probes_is_reported_as_their_maximum() {
    // The 500 alerts/s phase of 5 s that decided the keyed ratio had 50 probes: its "p99" was
    // the slowest of them.
    let fifty: Vec<f64> = (1..=50).map(f64::from).collect();
    assert_eq!(percentile(&fifty, 0.99), 50.0);
    assert!(p99_rank(50).contains("the slowest of 50 probes"));
    assert_eq!(p99_rank(100), " (1 of 100 slower)");
    assert_eq!(p99_rank(3000), " (30 of 3000 slower)");
    assert_eq!(p99_rank(0), "");
}

#[test]
fn the_legs_line_tells_the_brokers_wait_from_the_contenders_share() {
    let probe = |to_broker, contender| ProbeTimes {
        total_ms: to_broker + contender + 5.0,
        to_broker_ms: Some(to_broker),
        contender_ms: Some(contender),
        to_consumer_ms: Some(5.0),
    };
    // The slowest 2 of 100 are the p99 (the harness's percentile rounds to the nearest rank).
    let mut probes: Vec<ProbeTimes> = (0..98).map(|_| probe(2.0, 8.0)).collect();
    probes.extend([probe(1500.0, 40.0), probe(1500.0, 40.0)]);
    let line = legs_line("klaxon", &probes);
    assert!(
        line.contains("broker's ack of the alert 2 / 1500 ms")
            && line.contains("klaxon's output record created 8 / 40 ms")
            && line.contains("probe consumer 5 / 5 ms"),
        "{line}"
    );
    // A probe whose acknowledgement was not seen leaves its legs out, not zero.
    let unacked = ProbeTimes {
        total_ms: 9.0,
        ..ProbeTimes::default()
    };
    assert!(legs_line("p", &[unacked]).contains("alert n/a"));
}

#[test]
fn the_report_names_the_cpu_from_proc_cpuinfo() {
    let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu avx512f\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\n";
    assert_eq!(
        cpu_model(text).as_deref(),
        Some("Intel(R) Xeon(R) Processor")
    );
    // Some architectures' cpuinfo has no model name: the report says "unknown CPU" then.
    assert_eq!(cpu_model("processor\t: 0\nBogoMIPS\t: 48.00\n"), None);
    assert_eq!(cpu_model("model name\t:   \n"), None);
}
