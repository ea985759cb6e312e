//! The `klaxon` command line. `anyhow` lives here only; the library has typed errors.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use klaxon::engine::Engine;
use klaxon::settings::{self, config_dir};
use klaxon::time::Timestamp;
use std::io::{self, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

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
    Run,
    /// Replay JSON lines (alerts and commands) on event time; print escalations, one per line.
    Replay {
        /// After the input, advance the clock to this RFC 3339 time so timers up to it fire.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Input file, or - for standard input.
        #[arg(default_value = "-")]
        file: String,
    },
    /// Validate the config directory; print every problem with its file and key.
    CheckConfig,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("klaxon: {e:#}");
            ExitCode::from(2)
        }
    }
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

fn parse_time(flag: &str, v: &str) -> Result<Timestamp> {
    Timestamp::parse_rfc3339(v).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::CheckConfig => {
            let dir = config_dir(cli.config.as_deref());
            match settings::load(&dir) {
                Ok(c) => {
                    println!(
                        "{}: ok — ruleset {} ({} indicators), {} operators, {} assets, {} recipients",
                        dir.display(),
                        c.ruleset.id,
                        c.ruleset.indicators.len(),
                        c.registry.operators.len(),
                        c.registry.assets.len(),
                        c.ruleset.recipients.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprint!("{e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Cmd::Replay { until, file } => {
            let config = load_config(cli.config.as_ref())?;
            let until = until.map(|u| parse_time("until", &u)).transpose()?;
            let input = read_input(&file)?;
            let mut engine = Engine::from_config(&config);
            let stdout = io::stdout();
            let mut out = io::BufWriter::new(stdout.lock());
            let summary = klaxon::replay::run(
                &mut engine,
                input,
                config.settings.input.max_record_bytes,
                until,
                &mut out,
                |bad| {
                    eprintln!(
                        "{file}:{}: skipped: {} [{}]",
                        bad.line,
                        bad.error,
                        bad.error.code()
                    );
                },
            )
            .context("replay failed")?;
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
            let alerts =
                klaxon::explain::parse_alerts(&text, config.settings.input.max_record_bytes)
                    .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
            let mut engine = Engine::from_config(&config);
            print!("{}", klaxon::explain::explain(&mut engine, alerts, at));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run => bail!("`klaxon run` is not built yet"),
    }
}
