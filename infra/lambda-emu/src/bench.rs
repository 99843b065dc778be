//! `lambda-emu bench` (`make bench`): cold starts of every function's bootstrap under the
//! emulator against moto, beside a bare Rust function's, and the table of their figures against
//! the budgets.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use lambda_emu::{EmuError, Emulator, LocalWorld, Template, resign};
use serde_json::Value;
use shared::config::{EnvReader, MapEnv};
use shared::due_queue::{PollShards, SweepEvery};

use crate::{Cli, now_secs};

/// The sample event each function is cold-started with in the bench.
fn bench_event(logical_id: &str, binary: &str) -> String {
    match logical_id {
        "ServerTokenMintFunction" => "server-token-mint.json".into(),
        "IssueFunction" => "issue-status.json".into(),
        "KeyRotationFunction" => "key-rotation-scheduled.json".into(),
        "StatusPollerFunction" => "status-poller-scheduled.json".into(),
        "CallbackReceiverFunction" => "callback-cak.json".into(),
        _ => format!("{binary}.json"),
    }
}

/// The emulator's own report of the init phase: `INIT REPORT(durationMs: 9.98)`.
fn init_duration_ms(output: &str) -> Option<f64> {
    let at = output.find("INIT REPORT(durationMs: ")?;
    let rest = &output[at + "INIT REPORT(durationMs: ".len()..];
    rest[..rest.find(')')?].trim().parse().ok()
}

/// The size of `path` compressed as a Lambda deployment zip stores it (deflate, best).
fn zipped_size(path: &Path) -> Result<usize, EmuError> {
    let bytes = std::fs::read(path).map_err(|source| EmuError::Io {
        what: format!("reading {}", path.display()),
        source,
    })?;
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&bytes)
        .and_then(|()| enc.finish())
        .map(|v| v.len())
        .map_err(|source| EmuError::Io {
            what: "compressing".into(),
            source,
        })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The invocation durations the emulator reports, in order:
/// `REPORT RequestId: … \tDuration: 1.25 ms\tBilled Duration: …`.
fn invoke_durations_ms(output: &str) -> Vec<f64> {
    output
        .lines()
        .filter_map(|line| {
            let report = &line[line.find("REPORT RequestId")?..];
            report.split('\t').find_map(|field| {
                field
                    .trim()
                    .strip_prefix("Duration: ")?
                    .trim_end_matches("ms")
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .collect()
}

/// Minimum, median and maximum of a sample.
#[derive(Debug, Clone, Copy)]
struct Spread {
    min: f64,
    median: f64,
    max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        let median = median(&mut sorted);
        Self {
            min: sorted.first().copied().unwrap_or(f64::NAN),
            median,
            max: sorted.last().copied().unwrap_or(f64::NAN),
        }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = format!("{:.1}/{:.1}/{:.1}", self.min, self.median, self.max);
        f.pad(&text)
    }
}

/// What the cold starts of one bootstrap measured.
#[derive(Debug, Default)]
struct ColdStarts {
    init_ms: Vec<f64>,
    first_ms: Vec<f64>,
    warm_ms: Vec<f64>,
    peak_rss_kib: Vec<u64>,
}

/// Warm invocations after each cold start's first one.
const WARM_INVOCATIONS: usize = 5;

/// The status poller lists every possible shard (65 queues, where a routine run lists 9) in the
/// first minute of each `POLL_SWEEP_MINUTES` window. How long to wait, before a cold start at
/// `now` (epoch seconds), so that no second of the next `ahead` falls in such a minute: without
/// it, the poller's figures would depend on the minute `make bench` happens to run in. Zero when
/// no sweep minute is near, or when every minute sweeps (`POLL_SWEEP_MINUTES=1`). After a wait,
/// the next sweep minute is `POLL_SWEEP_MINUTES - 1` minutes away, so `ahead` must stay well
/// under that ([`POLLER_COLD_START_SECS`] does).
fn sweep_pause(sweep: SweepEvery, now: i64, ahead: i64) -> std::time::Duration {
    let Some(shards) = PollShards::new(1) else {
        return std::time::Duration::ZERO;
    };
    let sweeps = |t: i64| {
        sweep
            .listing(shards, shared::clock::Timestamp::from_secs(t))
            .is_sweep()
    };
    if sweep.minutes() <= 1 {
        return std::time::Duration::ZERO;
    }
    match (now..=now.saturating_add(ahead)).find(|t| sweeps(*t)) {
        Some(hit) => {
            let minute_ends = (hit.div_euclid(60) + 1) * 60;
            std::time::Duration::from_secs(u64::try_from(minute_ends - now).unwrap_or(0))
        }
        None => std::time::Duration::ZERO,
    }
}

/// The seconds one cold start of the poller, with its warm invocations, is given to end before a
/// sweep minute (one takes well under one second here).
const POLLER_COLD_START_SECS: i64 = 10;

/// The sweep interval [`cold_starts`] waits out for `spec`: the poller's `POLL_SWEEP_MINUTES` from
/// the template's environment; none for the other functions.
fn poller_sweep(spec: &lambda_emu::FunctionSpec) -> Result<Option<SweepEvery>, EmuError> {
    if spec.binary != "status-poller" {
        return Ok(None);
    }
    let env = MapEnv(spec.env.clone().into_iter().collect());
    SweepEvery::from_env(&EnvReader::new(&env))
        .map(Some)
        .map_err(|e| EmuError::Missing(e.to_string()))
}

/// Cold-starts `bootstrap` `runs` times; each time invokes it once cold and
/// [`WARM_INVOCATIONS`] times warm with the event `event` builds (signed afresh, each with its
/// own timestamp so that replay protection lets every one through), then reads its peak RSS.
/// With `sweep` (the poller's), each cold start first waits out a sweep minute ([`sweep_pause`]).
async fn cold_starts(
    rie: &Path,
    bootstrap: &Path,
    spec: &lambda_emu::FunctionSpec,
    world: &LocalWorld,
    event: &dyn Fn() -> Result<Value, EmuError>,
    runs: usize,
    sweep: Option<SweepEvery>,
) -> Result<ColdStarts, EmuError> {
    let mut out = ColdStarts::default();
    for _ in 0..runs {
        if let Some(sweep) = sweep {
            let wait = sweep_pause(sweep, now_secs(), POLLER_COLD_START_SECS);
            if !wait.is_zero() {
                eprintln!(
                    "(waiting {} s: the poller sweeps every shard in this minute)",
                    wait.as_secs()
                );
                tokio::time::sleep(wait).await;
            }
        }
        let emulator = Emulator::start(rie, bootstrap, spec, &world.extra_env())?;
        for n in 0..=WARM_INVOCATIONS {
            let mut e = event()?;
            let at = now_secs() - i64::try_from(n).unwrap_or_default();
            if resign::is_signed_request(&e) {
                let (id, secret) = world.api_key()?;
                resign::sign_request(&mut e, &id, &secret, at)?;
            } else if resign::is_webhook(&e) {
                resign::sign_webhook(&mut e, &world.webhook_secret()?, at)?;
            }
            let answer = emulator.invoke(&e).await?;
            if answer.get("errorType").is_some() {
                return Err(EmuError::Invoke(format!(
                    "{} answered a function error: {answer}",
                    bootstrap.display()
                )));
            }
        }
        let output = emulator.output();
        out.init_ms.extend(init_duration_ms(&output));
        let durations = invoke_durations_ms(&output);
        if let Some((first, warm)) = durations.split_first() {
            out.first_ms.push(*first);
            out.warm_ms.extend_from_slice(warm);
        }
        out.peak_rss_kib
            .extend(emulator.function_peak_rss_kib(bootstrap));
    }
    Ok(out)
}

/// The budgets `make bench` checks the figures against (the tests never time anything).
const INIT_MEDIAN_BUDGET_MS: f64 = 6.0;
/// The init budget as a multiple of a bare Rust function's init: 6 ms was set where a bare
/// function started in 2.5 ms. A machine slower or noisier than that moves both medians, not
/// their ratio, so the ratio is the figure to compare across machines and days.
const INIT_BARE_REFERENCE_MS: f64 = 2.5;
const INIT_RATIO_BUDGET: f64 = INIT_MEDIAN_BUDGET_MS / INIT_BARE_REFERENCE_MS;
const FIRST_INVOCATION_BUDGET_MS: f64 = 25.0;
const PEAK_RSS_BUDGET_MB: f64 = 12.0;
const ZIP_BUDGET_MB: f64 = 5.0;

/// `*` after a figure over its budget.
fn over(value: f64, budget: f64) -> &'static str {
    if value > budget { "*" } else { " " }
}

/// The template's functions (logical id, binary) that `only` names, in the template's order; all
/// of them when `only` is empty. A name that is no function of the template is an error, not an
/// empty run.
fn selected(
    functions: Vec<(String, String)>,
    only: &[String],
) -> Result<Vec<(String, String)>, EmuError> {
    if let Some(unknown) = only
        .iter()
        .find(|name| !functions.iter().any(|(id, _)| id == *name))
    {
        return Err(EmuError::Missing(format!(
            "no function {unknown:?} in the template"
        )));
    }
    Ok(functions
        .into_iter()
        .filter(|(id, _)| only.is_empty() || only.contains(id))
        .collect())
}

pub(crate) async fn bench(cli: &Cli, runs: usize, only: &[String]) -> Result<(), EmuError> {
    use shared::clock::{Clock as _, SystemClock};

    let template = Template::load(&cli.template)?;
    let rie = lambda_emu::find_rie(&cli.venv)?;
    let functions = selected(template.functions()?, only)?;
    let world = LocalWorld::start(&cli.table).await?;
    let root = PathBuf::from(".");
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    eprint!("{}", header(&SystemClock.now().to_rfc3339(), cores, runs));
    // The baseline: any function's environment will do, it reads none of it.
    let Some((first_id, _)) = functions.first() else {
        return Err(EmuError::Missing("no function in the template".into()));
    };
    let base_spec = template.function(first_id, &world.refs(&template))?;
    let bare_bootstrap = lambda_emu::bootstrap("bare-function")?;
    let bare = cold_starts(
        &rie,
        &bare_bootstrap,
        &base_spec,
        &world,
        &|| Ok(serde_json::json!({})),
        runs,
        // The baseline reads none of the spec's environment, the poller's included.
        None,
    )
    .await?;
    let bare_init = Spread::of(&bare.init_ms).median;
    print_row(
        "(bare Rust function)",
        &bare,
        bare_init,
        &bare_bootstrap,
        None,
    )?;
    for (logical_id, binary) in functions {
        let spec = template.function(&logical_id, &world.refs(&template))?;
        let bootstrap = lambda_emu::bootstrap(&binary)?;
        let event_file = root.join("events").join(bench_event(&logical_id, &binary));
        let figures = cold_starts(
            &rie,
            &bootstrap,
            &spec,
            &world,
            &|| lambda_emu::read_event(&event_file),
            runs,
            poller_sweep(&spec)?,
        )
        .await?;
        // What `make build` produced for Lambda, when it has been run.
        let arm = root
            .join(".aws-sam/build")
            .join(&logical_id)
            .join("bootstrap");
        print_row(&logical_id, &figures, bare_init, &bootstrap, Some(&arm))?;
    }
    Ok(())
}

/// The lines above the table: when, where and how the figures were taken, the budgets, and the
/// column names.
fn header(date: &str, cores: usize, runs: usize) -> String {
    format!(
        "cold starts under the Lambda emulator on moto, {date} ({cores} cores), {runs} per function, \
         {WARM_INVOCATIONS} warm invocations after each first one\n\
         budgets (* = over): init median <= {INIT_MEDIAN_BUDGET_MS} ms and <= {INIT_RATIO_BUDGET:.1} \
         x bare (the budget was set where a bare function inits in {INIT_BARE_REFERENCE_MS} ms), \
         first invocation median <= {FIRST_INVOCATION_BUDGET_MS} ms, peak RSS <= {PEAK_RSS_BUDGET_MB} MB, zipped arm64 \
         bootstrap <= {ZIP_BUDGET_MB} MB; \"x bare\" = init median / a bare Rust function's, \
         started the same way in this run; \"1st-warm\" = first invocation median - warm median, \
         what a cold start adds to the invocation's own work\n\
         {:<26} {:>17} {:>7} {:>17} {:>8} {:>8} {:>8} {:>9} {:>10}\n",
        "function",
        "init ms min/p50/max",
        "x bare",
        "first ms min/p50/max",
        "warm p50",
        "1st-warm",
        "RSS MB",
        "zip x86",
        "zip arm64"
    )
}

/// The arm64 bootstrap's zipped size, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ArmSize {
    /// Not measured for this row (the bare function is not built for arm64).
    NotApplicable,
    /// `make build` has not produced it yet.
    NotBuilt,
    Megabytes(f64),
}

fn print_row(
    name: &str,
    figures: &ColdStarts,
    bare_init_ms: f64,
    bootstrap: &Path,
    arm: Option<&Path>,
) -> Result<(), EmuError> {
    let x86 = zipped_size(bootstrap)? as f64 / 1e6;
    let arm = match arm {
        Some(p) if p.is_file() => ArmSize::Megabytes(zipped_size(p)? as f64 / 1e6),
        Some(_) => ArmSize::NotBuilt,
        None => ArmSize::NotApplicable,
    };
    eprintln!("{}", row(name, figures, bare_init_ms, x86, arm));
    Ok(())
}

/// One function's line of the table; `*` after each figure over its budget.
fn row(name: &str, figures: &ColdStarts, bare_init_ms: f64, x86_mb: f64, arm: ArmSize) -> String {
    let init = Spread::of(&figures.init_ms);
    let first = Spread::of(&figures.first_ms);
    let warm = Spread::of(&figures.warm_ms).median;
    let cold_part = first.median - warm;
    let ratio = init.median / bare_init_ms;
    let rss_mb = figures
        .peak_rss_kib
        .iter()
        .max()
        .map_or(f64::NAN, |kib| *kib as f64 * 1024.0 / 1e6);
    let arm = match arm {
        ArmSize::Megabytes(mb) => format!("{mb:.2}{}", over(mb, ZIP_BUDGET_MB)),
        ArmSize::NotBuilt => "(make build)".to_owned(),
        ArmSize::NotApplicable => "-".to_owned(),
    };
    format!(
        "{name:<26} {init:>16}{} {ratio:>6.2}{} {first:>16}{} {warm:>8.2} {cold_part:>8.2} {rss_mb:>7.1}{} {x86_mb:>9.2} {arm:>10}",
        over(init.median, INIT_MEDIAN_BUDGET_MS),
        over(ratio, INIT_RATIO_BUDGET),
        over(first.median, FIRST_INVOCATION_BUDGET_MS),
        over(rss_mb, PEAK_RSS_BUDGET_MB),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_functions() -> Vec<(String, String)> {
        vec![
            ("IssueFunction".into(), "issue".into()),
            ("StatusPollerFunction".into(), "status-poller".into()),
        ]
    }

    fn every(minutes: u16) -> SweepEvery {
        SweepEvery::new(minutes).unwrap()
    }

    // 2026-12-07 10:00:00 UTC: a minute that a ten-minute sweep falls in.
    const TEN_O_CLOCK: i64 = 1_796_637_600;

    #[test]
    fn a_cold_start_far_from_a_sweep_minute_does_not_wait() {
        let at = TEN_O_CLOCK + 5 * 60 + 30;
        assert_eq!(sweep_pause(every(10), at, 10), std::time::Duration::ZERO);
    }

    #[test]
    fn a_cold_start_in_a_sweep_minute_waits_for_its_end() {
        let at = TEN_O_CLOCK + 12;
        assert_eq!(
            sweep_pause(every(10), at, 10),
            std::time::Duration::from_secs(48)
        );
    }

    #[test]
    fn a_cold_start_that_would_run_into_a_sweep_minute_waits_past_it() {
        let at = TEN_O_CLOCK - 5;
        assert_eq!(
            sweep_pause(every(10), at, 10),
            std::time::Duration::from_secs(65)
        );
    }

    #[test]
    fn when_every_minute_sweeps_no_cold_start_waits() {
        assert_eq!(
            sweep_pause(every(1), TEN_O_CLOCK, 10),
            std::time::Duration::ZERO
        );
    }

    fn spec(binary: &str, env: &[(&str, &str)]) -> lambda_emu::FunctionSpec {
        lambda_emu::FunctionSpec {
            logical_id: "F".into(),
            binary: binary.into(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            timeout_secs: 10,
            memory_mb: 256,
            handler: "bootstrap".into(),
            runtime: "provided.al2023".into(),
        }
    }

    #[test]
    fn only_the_pollers_cold_starts_wait_out_its_sweeps_at_its_own_interval() {
        assert_eq!(poller_sweep(&spec("issue", &[])).unwrap(), None);
        assert_eq!(
            poller_sweep(&spec("status-poller", &[])).unwrap(),
            Some(SweepEvery::default())
        );
        assert_eq!(
            poller_sweep(&spec("status-poller", &[("POLL_SWEEP_MINUTES", "30")])).unwrap(),
            Some(every(30))
        );
        assert!(poller_sweep(&spec("status-poller", &[("POLL_SWEEP_MINUTES", "0")])).is_err());
    }

    #[test]
    fn a_bench_without_a_selection_measures_every_function() {
        assert_eq!(selected(two_functions(), &[]).unwrap(), two_functions());
    }

    #[test]
    fn a_bench_measures_only_the_functions_it_is_given() {
        let only = ["StatusPollerFunction".to_owned()];
        assert_eq!(
            selected(two_functions(), &only).unwrap(),
            vec![(
                "StatusPollerFunction".to_owned(),
                "status-poller".to_owned()
            )]
        );
    }

    #[test]
    fn a_bench_of_a_function_the_template_lacks_is_refused() {
        let only = ["StatusPoller".to_owned()];
        let err = selected(two_functions(), &only).unwrap_err();
        assert!(err.to_string().contains("StatusPoller"), "{err}");
    }

    #[test]
    fn the_init_duration_is_read_from_the_emulators_init_report() {
        let out = "x [INFO] (rapid) INIT RTDONE(status: success)\n\
                   01 Dec 2026 04:25:43,487 [INFO] (rapid) INIT REPORT(durationMs: 9.982000)\n";
        assert_eq!(init_duration_ms(out), Some(9.982));
        assert_eq!(init_duration_ms("nothing"), None);
    }

    #[test]
    fn invocation_durations_are_read_from_the_emulators_reports_in_order() {
        let out = "START RequestId: a Version: $LATEST\n\
                   END RequestId: a\n\
                   REPORT RequestId: a\tInit Duration: 9.10 ms\tDuration: 52.13 ms\tBilled Duration: 53 ms\tMemory Size: 3008 MB\n\
                   REPORT RequestId: b\tDuration: 1.25 ms\tBilled Duration: 2 ms\n";
        assert_eq!(invoke_durations_ms(out), vec![52.13, 1.25]);
        assert!(invoke_durations_ms("INIT REPORT(durationMs: 9.9)").is_empty());
    }

    #[test]
    fn the_header_gives_the_date_the_machine_the_budgets_and_every_column() {
        let text = header("2026-12-07T14:00:00.000Z", 2, 15);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains("2026-12-07T14:00:00.000Z (2 cores), 15 per function"));
        assert!(lines[0].contains("5 warm invocations"));
        for budget in [
            "init median <= 6 ms and <= 2.4 x bare",
            "first invocation median <= 25 ms",
            "peak RSS <= 12 MB",
            "zipped arm64 bootstrap <= 5 MB",
        ] {
            assert!(
                lines[1].contains(budget),
                "{budget:?} missing from {:?}",
                lines[1]
            );
        }
        // Every column, in this order.
        let mut rest = lines[2];
        for column in [
            "function",
            "init ms min/p50/max",
            "x bare",
            "first ms min/p50/max",
            "warm p50",
            "1st-warm",
            "RSS MB",
            "zip x86",
            "zip arm64",
        ] {
            let at = rest
                .find(column)
                .unwrap_or_else(|| panic!("{column:?} missing or out of order"));
            rest = &rest[at + column.len()..];
        }
        assert_eq!(rest.trim(), "");
    }

    fn figures(init_ms: &[f64], first_ms: &[f64], warm_ms: &[f64], rss_kib: &[u64]) -> ColdStarts {
        ColdStarts {
            init_ms: init_ms.to_vec(),
            first_ms: first_ms.to_vec(),
            warm_ms: warm_ms.to_vec(),
            peak_rss_kib: rss_kib.to_vec(),
        }
    }

    #[test]
    fn a_row_gives_each_spread_the_ratio_to_bare_the_cold_part_the_rss_and_the_sizes() {
        let within = figures(
            &[3.0, 4.0, 9.0],
            &[10.0, 12.0, 30.0],
            &[2.0, 2.5, 3.0],
            &[9000, 9765],
        );
        let line = row("Jwks", &within, 2.0, 3.41, ArmSize::Megabytes(3.2));
        let fields: Vec<&str> = line.split_whitespace().collect();
        // init min/p50/max, init / bare, first min/p50/max, warm p50, first - warm, peak RSS
        // (the largest, in MB), zipped x86_64 and arm64; nothing is over its budget.
        assert_eq!(
            fields,
            [
                "Jwks",
                "3.0/4.0/9.0",
                "2.00",
                "10.0/12.0/30.0",
                "2.50",
                "9.50",
                "10.0",
                "3.41",
                "3.20"
            ]
        );
    }

    #[test]
    fn a_row_marks_every_figure_over_its_budget() {
        let over_all = figures(&[7.0], &[26.0], &[1.0], &[12_000]);
        let line = row("Issue", &over_all, 2.5, 5.5, ArmSize::Megabytes(5.1));
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            fields,
            [
                "Issue",
                "7.0/7.0/7.0*",
                "2.80*",
                "26.0/26.0/26.0*",
                "1.00",
                "25.00",
                "12.3*",
                "5.50",
                "5.10*"
            ]
        );
        // Exactly at a budget is within it.
        let at = figures(&[6.0], &[25.0], &[1.0], &[11_718]);
        assert!(!row("Issue", &at, 2.5, 1.0, ArmSize::NotBuilt).contains('*'));
    }

    #[test]
    fn a_row_says_when_the_arm64_build_is_missing_or_does_not_apply() {
        let f = figures(&[3.0], &[5.0], &[1.0], &[4000]);
        assert!(row("Jwks", &f, 3.0, 3.4, ArmSize::NotBuilt).ends_with("(make build)"));
        assert!(
            row(
                "(bare Rust function)",
                &f,
                3.0,
                0.55,
                ArmSize::NotApplicable
            )
            .ends_with(" -")
        );
    }

    #[test]
    fn a_spread_gives_the_minimum_median_and_maximum() {
        let s = Spread::of(&[3.0, 1.0, 2.0, 10.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 2.5, 10.0));
        assert_eq!(format!("{s}"), "1.0/2.5/10.0");
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), 3.0);
    }
}
