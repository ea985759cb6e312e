//! The `klaxon` command line. `anyhow` lives here only; the library has typed errors.

use anyhow::{Context, Result};

/// mimalloc, called as `klaxon::allocator` explains.
#[global_allocator]
static GLOBAL: klaxon::allocator::Allocator = klaxon::allocator::Allocator;
use chrono::Offset;
use clap::{Parser, Subcommand};
use klaxon::engine::Engine;
use klaxon::runtime::clock::Clock;
use klaxon::settings::{self, config_dir};
use klaxon::telemetry::logging::{self, LogFormat};
use klaxon::telemetry::Metrics;
use klaxon::time::Timestamp;
use std::io::{self, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Klaxon grades security incidents on China's 2025 incident-grading guide and runs the reporting
/// deadlines (1 h for CII operators, 2 h for central and state organs, 4 h for everyone else).
#[derive(Parser)]
#[command(name = "klaxon", version, about, long_about = None)]
struct Cli {
    /// Config directory (default: $KLAXON_CONFIG, else ./config).
    #[arg(long, global = true, value_name = "DIR")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the live service: Kafka in, escalations out, metrics on /metrics.
    Run {
        /// Log format (JSON lines by default, for log shippers).
        #[arg(long, value_enum, default_value = "json")]
        log_format: LogFormat,
        /// Demo only: start a simulated clock at this RFC 3339 time...
        #[arg(long, value_name = "TIME", hide = true)]
        clock_start: Option<String>,
        /// ...running this many times faster than real time.
        #[arg(long, value_name = "N", hide = true, default_value = "1")]
        clock_speed: f64,
    },
    /// The duty desk on its own: the incident API and the web board over every partition's
    /// state (docs/spec.md §9). `klaxon run` also serves it when `desk.enabled`.
    Desk {
        /// Log format (JSON lines by default, for log shippers).
        #[arg(long, value_enum, default_value = "json")]
        log_format: LogFormat,
    },
    /// Write a new Ed25519 private key for signing commands to FILE (mode 0600) and print its
    /// public key, base64, for `[[commands.keys]]`.
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Talk to the desk: list and show incidents, send commands. Token from $KLAXON_TOKEN.
    Ctl(klaxon::ctl::CtlArgs),
    /// Replay JSON lines (alerts and commands) on event time; print escalations, one per line.
    Replay {
        /// After the input, advance the clock to this RFC 3339 time so timers up to it fire.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Instead of event time: what `klaxon run` sends reading the input as a backlog at this
        /// RFC 3339 time (after downtime): missed overdue repeats fold into one per report,
        /// stale reminders are not sent, records outside the live admission window around it
        /// are skipped. Events come partition by partition (`state.partitions`).
        #[arg(long, value_name = "TIME", conflicts_with = "until")]
        as_of: Option<String>,
        /// Input file, or - for standard input.
        #[arg(default_value = "-")]
        file: String,
        /// A file larger than this (MiB) is replayed in two passes: its records' times and
        /// places first, then each record read and decoded again in time order, holding 32 bytes
        /// per record instead of the whole input decoded (~2.3 times its size). Same output.
        /// A pipe (standard input, `<(zcat …)`) is first copied to a temporary file in $TMPDIR
        /// (gone when the replay ends), then replayed as a file. `--as-of` reads a chunk at a
        /// time either way.
        #[arg(long, value_name = "MIB", default_value_t = klaxon::replay::HOLD_DECODED_MAX_BYTES >> 20)]
        hold_max_mib: u64,
    },
    /// The demo: the live service on a simulated clock against a broker ($KAFKA_BROKERS), fed
    /// the example day, printing escalations as they arrive. `scripts/demo.sh` starts a broker.
    Demo {
        /// Alerts and commands to feed, as JSON lines.
        #[arg(long, default_value = "examples/day.jsonl")]
        input: PathBuf,
        /// How many times faster than real time the simulated clock runs.
        #[arg(long, default_value = "480")]
        speed: f64,
        /// Where the simulated clock starts.
        #[arg(long, default_value = "2026-11-24T00:00:00+08:00")]
        start: String,
        /// Where the demo stops.
        #[arg(long, default_value = "2026-11-25T00:00:00+08:00")]
        until: String,
    },
    /// The end-to-end load harness against $KAFKA_BROKERS: throughput against a raw passthrough,
    /// latency at half of peak, timer accuracy, and memory/timers/restore at scale.
    /// `scripts/load.sh` starts a broker and runs it in release mode.
    LoadTest {
        /// Alerts in the throughput backlog.
        #[arg(long, default_value = "100000")]
        alerts: usize,
        /// Distinct correlation keys among them.
        #[arg(long, default_value = "5000")]
        keys: usize,
        /// Seconds of paced alerts in each latency phase.
        #[arg(long, default_value = "5")]
        latency_seconds: f64,
        /// Alerts per second in the latency phases (default: half of Klaxon's median peak).
        #[arg(long)]
        latency_rate: Option<f64>,
        /// Every this many alerts of a latency phase is a probe (opening an incident of its own)
        /// whose latency is measured. A p99 needs a few hundred probes to be more than their
        /// maximum: at low rates lower this or lengthen --latency-seconds.
        #[arg(long, default_value = "50", value_parser = clap::value_parser!(u32).range(1..))]
        probe_every: u32,
        /// Throughput rounds, alternating passthrough and Klaxon on fresh backlogs; the ratio's
        /// min/median/max over them is reported (a shared machine swings between runs).
        #[arg(long, default_value = "3")]
        rounds: usize,
        /// Only the throughput rounds: no latency, timer, restore or memory phases.
        #[arg(long)]
        throughput_only: bool,
        /// Delete each throughput contender's topics once it is measured. The local test broker
        /// keeps every topic in memory: backlogs of over ~1 M alerts need this. Off by default
        /// (the latency phase after it measured a longer tail; docs/benchmarks.md)
        #[arg(long)]
        drop_round_topics: bool,
        /// Open incidents in the scale phase (no broker).
        #[arg(long, default_value = "1000000")]
        scale_incidents: usize,
        /// Incidents restored through Kafka, spread over the changelog's `state.partitions`.
        #[arg(long, default_value = "1000000")]
        restore_incidents: usize,
        /// Run one memory phase (`scale`, `assets` or `dedup`) and print its line: the harness
        /// runs each in a fresh process of its own, so memory freed by earlier phases cannot hide
        /// growth.
        #[arg(long, hide = true, value_name = "PHASE")]
        memory_phase: Option<String>,
    },
    /// The delivery stage alone: escalation events from Kafka to Prometheus Alertmanager and
    /// signed webhooks (`[delivery]` in the config), with its own consumer group.
    Deliver {
        /// Log format (JSON lines by default, for log shippers).
        #[arg(long, value_enum, default_value = "json")]
        log_format: LogFormat,
    },
    /// Validate the config directory; print every problem with its file and key.
    CheckConfig,
    /// For alerts (JSON lines on stdin, any configured format): the record key and partition a
    /// producer writes each under for `kafka.input_keyed`, one `<key> <partition>` line per alert.
    RouteKey,
    /// Grade the alerts given (JSON lines, an object or an array) as one incident and explain why.
    Grade {
        /// Measure ongoing durations at this RFC 3339 time (default: the latest alert's time).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Input file, or - for standard input.
        #[arg(default_value = "-")]
        file: String,
    },
}

/// The async runtime of the commands that talk to Kafka.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn main() -> ExitCode {
    // Before anything sizeable is allocated. A kernel that refuses (before Linux 3.15, or under
    // a seccomp filter) leaves huge pages as they were: slower to fault in, nothing else.
    let _ = klaxon::allocator::without_transparent_huge_pages();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("klaxon: {}", error_message(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes joined by ": ", each said once. Our error types write their cause
/// into their own message (so a log line of one error is complete), and also report it as their
/// source; printing the chain as it stands says the same thing two or three times.
fn error_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn load_config(flag: Option<&PathBuf>) -> Result<settings::Config> {
    let dir = config_dir(flag.map(|p| p.as_path()));
    settings::load(&dir)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("loading config from {}", dir.display()))
}

fn read_input(file: &str) -> Result<Box<dyn io::BufRead>> {
    if file == "-" {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    let f = std::fs::File::open(file).with_context(|| format!("cannot read {file}"))?;
    Ok(Box::new(BufReader::new(f)))
}

/// Standard input as a `File` of its own descriptor, when it is a regular file (`< FILE`), so a
/// replay can read it in two passes where it lies.
#[cfg(unix)]
fn stdin_file() -> Option<std::fs::File> {
    use std::os::fd::AsFd;
    let f = std::fs::File::from(io::stdin().as_fd().try_clone_to_owned().ok()?);
    f.metadata().ok()?.is_file().then_some(f)
}

#[cfg(not(unix))]
fn stdin_file() -> Option<std::fs::File> {
    None
}

fn parse_time(flag: &str, v: &str) -> Result<Timestamp> {
    Timestamp::parse_rfc3339(v).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
}

/// The input as a message names it: its path, or "standard input" for `-`.
fn input_name(file: &str) -> &str {
    if file == "-" {
        "standard input"
    } else {
        file
    }
}

/// A replay's line for an input line it skipped: `FILE:LINE: skipped: reason [code]`.
fn skipped(file: &str, bad: &klaxon::replay::BadLine) -> String {
    format!(
        "{file}:{}: skipped: {} [{}]",
        bad.line,
        bad.error,
        bad.error.code()
    )
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Desk { log_format } => {
            logging::init(log_format);
            let config = Arc::new(load_config(cli.config.as_ref())?);
            let metrics = Arc::new(Metrics::new().context("building metrics")?);
            let rt = runtime()?;
            rt.block_on(klaxon::desk::run(
                config,
                metrics,
                Clock::wall(),
                shutdown_signal(),
            ))
            .context("klaxon desk")?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Keygen { out } => {
            let public = klaxon::signing::generate(&out).context("klaxon keygen")?;
            println!("{public}");
            eprintln!(
                "private key written to {} (mode 0600); add the public key to config:\n  [[commands.keys]]\n  id = \"<a name>\"\n  public_key = \"{public}\"\n  principals = [\"<who it may sign for>\"]",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Ctl(args) => {
            let rt = runtime()?;
            Ok(ExitCode::from(rt.block_on(klaxon::ctl::run(args))))
        }
        Cmd::Demo {
            input,
            speed,
            start,
            until,
        } => {
            logging::init_with_default(LogFormat::Text, "error");
            let config = load_config(cli.config.as_ref())?;
            // A fresh secret for the demo pager's signatures, set before any thread starts.
            if std::env::var_os(klaxon::demo::DEMO_SECRET_ENV).is_none() {
                use std::hash::BuildHasher;
                let secret = std::collections::hash_map::RandomState::new().hash_one(0u8);
                std::env::set_var(klaxon::demo::DEMO_SECRET_ENV, format!("{secret:016x}"));
            }
            let opts = klaxon::demo::DemoOptions {
                start: parse_time("start", &start)?,
                until: parse_time("until", &until)?,
                speed,
                color: std::io::IsTerminal::is_terminal(&io::stdout()),
            };
            let rt = runtime()?;
            rt.block_on(klaxon::demo::run(config, &input, opts, shutdown_signal()))
                .map_err(|e| anyhow::anyhow!(e))
                .context("klaxon demo")?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::LoadTest {
            alerts,
            keys,
            latency_seconds,
            latency_rate,
            probe_every,
            rounds,
            throughput_only,
            drop_round_topics,
            scale_incidents,
            restore_incidents,
            memory_phase,
        } => {
            logging::init_with_default(LogFormat::Text, "error");
            let config = load_config(cli.config.as_ref())?;
            let progress = std::io::IsTerminal::is_terminal(&io::stderr());
            match memory_phase.as_deref() {
                Some("scale") => {
                    print!(
                        "{}",
                        klaxon::loadtest::scale(&config, scale_incidents, progress)
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                Some("assets") => {
                    print!(
                        "{}",
                        klaxon::loadtest::own_assets(&config, scale_incidents, progress)
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                Some("dedup") => {
                    print!("{}", klaxon::loadtest::dedup_bound(&config, progress));
                    return Ok(ExitCode::SUCCESS);
                }
                Some(other) => {
                    anyhow::bail!("unknown --memory-phase {other:?} (scale, assets, dedup)")
                }
                None => {}
            }
            let opts = klaxon::loadtest::LoadOptions {
                alerts,
                keys,
                latency_seconds,
                latency_rate,
                probe_every: probe_every as usize,
                rounds,
                throughput_only,
                drop_round_topics,
                restore_incidents,
                progress,
            };
            let rt = runtime()?;
            let report = rt
                .block_on(klaxon::loadtest::run(config, opts))
                .map_err(|e| anyhow::anyhow!(e))
                .context("klaxon load-test")?;
            print!("{report}");
            if throughput_only {
                return Ok(ExitCode::SUCCESS);
            }
            for phase in ["scale", "assets", "dedup"] {
                let mut child = std::process::Command::new(
                    std::env::current_exe().context("finding the klaxon binary")?,
                );
                if let Some(dir) = &cli.config {
                    child.arg("--config").arg(dir);
                }
                let out = child
                    .args(["load-test", "--memory-phase", phase, "--scale-incidents"])
                    .arg(scale_incidents.to_string())
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .with_context(|| format!("running the {phase} phase"))?;
                anyhow::ensure!(out.status.success(), "the {phase} phase failed");
                print!("{}", String::from_utf8_lossy(&out.stdout));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::RouteKey => {
            let config = load_config(cli.config.as_ref())?;
            let mut failed = 0usize;
            let mut out = io::stdout().lock();
            for (n, line) in io::stdin().lines().enumerate() {
                let line = line.context("reading stdin")?;
                if line.trim().is_empty() {
                    continue;
                }
                match klaxon::runtime::keyed::record_key(&config, line.as_bytes()) {
                    Ok((key, partition)) => {
                        writeln!(out, "{} {partition}", String::from_utf8_lossy(&key))?
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("line {}: {e}", n + 1);
                    }
                }
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::CheckConfig => {
            let dir = config_dir(cli.config.as_deref());
            match settings::load(&dir) {
                Ok(c) => {
                    println!(
                        "{}: ok — ruleset {} ({} indicators), {} operators, {} assets, {} recipients, {} escalation policies",
                        dir.display(),
                        c.ruleset.id,
                        c.ruleset.indicators.len(),
                        c.registry.operators.len(),
                        c.registry.assets.len(),
                        c.ruleset.recipients.len(),
                        c.ruleset.escalation.policies.len()
                    );
                    println!("{}", c.mappings.describe());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprint!("{e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Cmd::Replay {
            until,
            as_of,
            file,
            hold_max_mib,
        } => {
            let config = load_config(cli.config.as_ref())?;
            let until = until.map(|u| parse_time("until", &u)).transpose()?;
            let as_of = as_of.map(|u| parse_time("as-of", &u)).transpose()?;
            // The clock may not go where no record may be (see klaxon::admission).
            let w = klaxon::admission::Window::REPLAY;
            for (flag, t) in [("--until", until), ("--as-of", as_of)] {
                if let Some(u) = t.filter(|u| !w.contains(*u)) {
                    let utc = chrono::Utc.fix();
                    anyhow::bail!(
                        "{flag}: {} is outside the replayable range {} to {}",
                        u.format(utc),
                        w.earliest.format(utc),
                        w.latest.format(utc)
                    );
                }
            }
            if let Some(at) = as_of {
                let input = read_input(&file)?;
                let stdout = io::stdout();
                let mut out = io::BufWriter::new(stdout.lock());
                let summary = klaxon::replay::catch_up_as_of(&config, input, at, &mut out, |bad| {
                    eprintln!("{}", skipped(&file, bad))
                })
                .with_context(|| format!("cannot replay {}", input_name(&file)))?;
                out.flush()?;
                eprintln!(
                    "caught up on {} records as of {} ({} skipped), {} events",
                    summary.records,
                    at.format(chrono::Utc.fix()),
                    summary.rejected,
                    summary.events
                );
                return Ok(ExitCode::SUCCESS);
            }
            let mut engine = Engine::from_config(&config);
            let stdout = io::stdout();
            let mut out = io::BufWriter::new(stdout.lock());
            // A progress bar on a terminal; nothing when stderr is piped. A file replayed in two
            // passes shows its first pass in bytes, then the records applied.
            let bar = if std::io::IsTerminal::is_terminal(&io::stderr()) {
                indicatif::ProgressBar::new(0)
            } else {
                indicatif::ProgressBar::hidden()
            };
            let style = |template: &str| {
                indicatif::ProgressStyle::with_template(template)
                    .map(|s| s.progress_chars("=> "))
                    .ok()
            };
            let copying_style = style(
                "replay, copying the pipe to a temporary file: {bytes} ({bytes_per_sec}, {elapsed})",
            );
            let reading_style =
                style("replay, pass one [{bar:40}] {bytes}/{total_bytes} read ({bytes_per_sec}, eta {eta})");
            let applying_style =
                style("replay [{bar:40}] {human_pos}/{human_len} records (eta {eta})");
            if let Some(s) = &applying_style {
                bar.set_style(s.clone());
            }
            let on_bad = |bad: &klaxon::replay::BadLine| {
                bar.suspend(|| eprintln!("{}", skipped(&file, bad)));
            };
            let mut phase = None;
            let on_progress = &mut |p: klaxon::replay::Progress| {
                use klaxon::replay::Progress::{Applying, Copying, Reading};
                let (style, done, of) = match p {
                    // Of an unknown whole: the length is never shown.
                    Copying { bytes } => (&copying_style, bytes, bytes),
                    Reading { bytes, of } => (&reading_style, bytes, of),
                    Applying { records, of } => (&applying_style, records as u64, of as u64),
                };
                let now = std::mem::discriminant(&p);
                // A new phase is drawn only once style, length and position all belong to it.
                let switched = phase != Some(now);
                let visible = !bar.is_hidden();
                if switched {
                    phase = Some(now);
                    bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
                    bar.reset();
                    if let Some(s) = style {
                        bar.set_style(s.clone());
                    }
                }
                bar.set_length(of);
                bar.set_position(done);
                if switched && visible {
                    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                }
            };
            let reading = klaxon::replay::Reading {
                max_bytes: config.settings.input.max_record_bytes,
                mappings: &config.mappings,
                until,
            };
            let (engine, out) = (&mut engine, &mut out);
            let hold_max_bytes = hold_max_mib.saturating_mul(1 << 20);
            // Standard input redirected from a file is that file (no copy); a pipe is a stream,
            // copied to a temporary file first (see run_input_with_progress).
            let opened = if file == "-" {
                stdin_file()
            } else {
                let f =
                    std::fs::File::open(&file).with_context(|| format!("cannot read {file}"))?;
                Some(f)
            };
            let mut stdin = io::stdin().lock();
            let source = match &opened {
                Some(f) => klaxon::replay::Source::File(f),
                None => klaxon::replay::Source::Stream(&mut stdin),
            };
            let summary = klaxon::replay::run_input_with_progress(
                engine,
                source,
                hold_max_bytes,
                reading,
                out,
                on_bad,
                on_progress,
            )
            .with_context(|| format!("cannot replay {}", input_name(&file)))?;
            bar.finish_and_clear();
            out.flush()?;
            eprintln!(
                "replayed {} records ({} skipped), {} events",
                summary.records, summary.rejected, summary.events
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Grade { at, file } => {
            let config = load_config(cli.config.as_ref())?;
            let at = at.map(|u| parse_time("at", &u)).transpose()?;
            let mut text = String::new();
            read_input(&file)?
                .read_to_string(&mut text)
                .with_context(|| format!("cannot read {file}"))?;
            let alerts = klaxon::explain::parse_alerts_with(
                &text,
                config.settings.input.max_record_bytes,
                &config.mappings,
            )
            .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
            let mut engine = Engine::from_config(&config);
            print!("{}", klaxon::explain::explain(&mut engine, alerts, at));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Deliver { log_format } => {
            logging::init(log_format);
            let config = Arc::new(load_config(cli.config.as_ref())?);
            let rt = runtime()?;
            rt.block_on(klaxon::delivery::serve(config, shutdown_signal()))
                .context("klaxon deliver")?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            log_format,
            clock_start,
            clock_speed,
        } => {
            logging::init(log_format);
            let config = Arc::new(load_config(cli.config.as_ref())?);
            let clock = match clock_start {
                Some(t) => Clock::simulated(parse_time("clock-start", &t)?, clock_speed),
                None => Clock::wall(),
            };
            let metrics = Arc::new(Metrics::new().context("building metrics")?);
            let rt = runtime()?;
            rt.block_on(klaxon::runtime::run(
                config,
                metrics,
                clock,
                shutdown_signal(),
            ))
            .context("klaxon run")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
