//! The `isobar` command: parse the command line, load settings, build the
//! app and run it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use figment::Figment;
use figment::providers::Serialized;
use isobar::config::{ConfigError, EXIT_BAD_CONFIG, Settings, parse_host_port};
use isobar::{App, simulator};

#[derive(Parser)]
#[command(
    name = "isobar",
    version,
    about = "A weather-station network in one daemon"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run(RunArgs),
    /// Publish simulated station readings to an MQTT broker.
    Simulate(SimulateArgs),
    /// Publish recorded observations from a CSV file through the pipeline.
    Replay(ReplayArgs),
    /// Apply pending database migrations and exit.
    Migrate(ConfigArgs),
    /// Validate the configuration and print the effective settings.
    CheckConfig(ConfigArgs),
}

#[derive(Args)]
struct ConfigArgs {
    /// TOML configuration file (see config/isobar.example.toml).
    #[arg(long, short, env = "ISOBAR_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Also run the built-in simulator with N stations.
    #[arg(long, value_name = "N")]
    simulate: Option<u32>,
    /// Also hand in the recorded observations of this CSV file (the same
    /// columns as `isobar replay`), from inside the daemon, at start.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Address for the API, websocket and dashboard (web.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Address of the embedded MQTT broker (mqtt.listen).
    #[arg(long, value_name = "ADDR")]
    mqtt_listen: Option<SocketAddr>,
    /// Directory for the database (storage.data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ReplayArgs {
    /// CSV file; its header names columns with units (see docs/formats.md).
    file: PathBuf,
    /// Broker to publish to, host:port.
    #[arg(long, default_value = "127.0.0.1:1883")]
    broker: String,
    /// Rows per second; as fast as the broker takes them when absent.
    #[arg(long)]
    rate: Option<f64>,
}

#[derive(Args)]
struct SimulateArgs {
    /// Broker to publish to, host:port.
    #[arg(long, default_value = "127.0.0.1:1883")]
    broker: String,
    /// Number of stations.
    #[arg(long, default_value_t = 10)]
    stations: u32,
    /// Time between two readings of one station (e.g. 1s, 250ms).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Stop after this many readings per station.
    #[arg(long)]
    rounds: Option<u64>,
    /// Seed for a repeatable run.
    #[arg(long)]
    seed: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    isobar::config::install_crypto_provider();
    isobar::memory::set_give_back(give_back_to_the_system);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(give_back_freed_memory)
        // A blocking thread (SQLite, files) idle for this long exits, and
        // the allocator takes back what it held; the default, 10 s, kept
        // a burst's threads and their memory for as long as anything ran
        // on the pool every few seconds.
        .thread_keep_alive(Duration::from_secs(2))
        .build()
        .expect("the tokio runtime starts");
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Simulate(args) => simulate(args).await,
            Command::Replay(args) => replay(args).await,
            Command::Migrate(args) => migrate(args).await,
            Command::CheckConfig(args) => check_config(args),
        }
    })
}

/// Called as a worker thread goes idle: once after each burst (see
/// [`give_back_to_the_system`]), the thread hands the objects its cache
/// keeps for reuse back to jemalloc, so that pages they alone kept in use
/// are freed with the rest. Otherwise nothing: jemalloc's background thread
/// hands freed pages back by itself.
fn give_back_freed_memory() {
    use std::cell::Cell;
    thread_local! {
        static BURSTS_SEEN: Cell<u64> = const { Cell::new(0) };
    }
    let bursts = BURSTS_OVER.load(Ordering::Relaxed);
    if BURSTS_SEEN.get() == bursts {
        return;
    }
    BURSTS_SEEN.set(bursts);
    let _ = jemalloc::control(c"thread.tcache.flush");
}

/// How many bursts have ended: each worker thread flushes its cache once
/// after each.
static BURSTS_OVER: AtomicU64 = AtomicU64::new(0);

/// Called once a burst is over (the readings have stopped): the C
/// library's malloc, which SQLite and other C code use, hands back the
/// free pages in all its arenas; jemalloc hands back the freed pages of
/// all its arenas now rather than as they age; and each worker thread
/// flushes its cache as it next goes idle.
fn give_back_to_the_system() {
    // SAFETY: malloc_trim takes no pointers and may be called on any
    // thread at any time.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
    // Every arena: MALLCTL_ARENAS_ALL.
    let _ = jemalloc::control(c"arena.4096.purge");
    BURSTS_OVER.fetch_add(1, Ordering::Relaxed);
}

fn load(args: &ConfigArgs, overrides: Figment) -> Result<Settings, ExitCode> {
    Settings::load(args.config.as_deref(), overrides).map_err(|e: ConfigError| {
        eprintln!("isobar: {e}");
        ExitCode::from(EXIT_BAD_CONFIG as u8)
    })
}

async fn run(args: RunArgs) -> ExitCode {
    let mut overrides = Figment::new();
    if let Some(n) = args.simulate {
        overrides = overrides.merge(Serialized::default("simulator.stations", n));
    }
    if let Some(addr) = args.listen {
        overrides = overrides.merge(Serialized::default("web.listen", addr));
    }
    if let Some(addr) = args.mqtt_listen {
        overrides = overrides.merge(Serialized::default("mqtt.listen", addr));
    }
    if let Some(dir) = &args.data_dir {
        overrides = overrides.merge(Serialized::default("storage.data_dir", dir));
    }
    let settings = match load(&args.config, overrides.clone()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let replay = match args
        .replay
        .as_deref()
        .map(isobar::replay::ReplaySource::from_file)
        .transpose()
    {
        Ok(replay) => replay,
        Err(e) => {
            eprintln!("isobar: --replay: {e}");
            return ExitCode::from(EXIT_BAD_DATA);
        }
    };
    let telemetry = match isobar::telemetry::init(&settings.log, &settings.telemetry) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("isobar: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG as u8);
        }
    };
    let code = serve(settings, overrides, args.config.config.clone(), replay).await;
    // The exporter's HTTP client may not be dropped on the runtime's threads.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    code
}

async fn serve(
    settings: Settings,
    overrides: Figment,
    config: Option<PathBuf>,
    replay: Option<isobar::replay::ReplaySource>,
) -> ExitCode {
    let mut app = match App::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "startup failed");
            eprintln!("isobar: {e}");
            return ExitCode::FAILURE;
        }
    };
    // SIGHUP: read the configuration again; the restart policies and the
    // station metadata take effect at once, everything else at the next
    // start.
    if let Some(replay) = replay {
        app.replay(replay);
    }
    let reload = app.reloader();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangup.recv().await.is_some() {
            match Settings::load(config.as_deref(), overrides.clone()) {
                Ok(new) => {
                    tracing::info!(
                        pipeline = ?new.supervision.pipeline.policy(),
                        stations = ?new.supervision.stations.policy(),
                        overrides = new.supervision.station_overrides.len(),
                        stations = new.stations.len(),
                        "configuration reloaded: restart policies in force from the next failure, station metadata at once"
                    );
                    reload(new);
                }
                Err(e) => tracing::error!(key = %e.key, reason = %e.reason,
                    "configuration reload refused; the running policies stay"),
            }
        }
    });
    println!("isobar: dashboard and API on http://{}", app.web_addr());
    match app.mqtt_addr() {
        Some(mqtt) => println!("isobar: MQTT broker at {mqtt}"),
        None if app.settings().cluster.role == isobar::config::ClusterRole::Api => {
            println!("isobar: API only, no readings taken here (cluster.role = \"api\")")
        }
        None => println!(
            "isobar: readings from Kafka at {} ({})",
            app.settings().cluster.brokers,
            app.settings().cluster.topic
        ),
    }
    match app.run(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("isobar: {e}");
            ExitCode::from(70)
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}

/// What the publishing commands (simulate, replay) share: logs to stderr,
/// and the broker address, or exit 64 naming `--broker`.
fn client_start(broker: &str) -> Result<(String, u16), ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
    parse_host_port(broker).map_err(|reason| {
        eprintln!("isobar: invalid --broker: {reason}");
        ExitCode::from(EXIT_BAD_CONFIG as u8)
    })
}

async fn simulate(args: SimulateArgs) -> ExitCode {
    let (host, port) = match client_start(&args.broker) {
        Ok(hp) => hp,
        Err(code) => return code,
    };
    if args.stations == 0 || args.stations > 10_000 {
        eprintln!("isobar: invalid --stations: must be from 1 to 10000");
        return ExitCode::from(EXIT_BAD_CONFIG as u8);
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        token.cancel();
    });
    match simulator::publish(
        &isobar::publisher::Target::new(&host, port),
        args.stations,
        args.interval,
        args.seed,
        args.rounds,
        stop,
    )
    .await
    {
        Ok(n) => {
            eprintln!("isobar: published {n} readings");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("isobar: simulator failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exit status for input data that is not valid (EX_DATAERR).
const EXIT_BAD_DATA: u8 = 65;

async fn replay(args: ReplayArgs) -> ExitCode {
    let (host, port) = match client_start(&args.broker) {
        Ok(hp) => hp,
        Err(code) => return code,
    };
    if args
        .rate
        .is_some_and(|r| !(0.001..=1_000_000.0).contains(&r))
    {
        eprintln!("isobar: invalid --rate: rows per second, from 0.001 to 1000000");
        return ExitCode::from(EXIT_BAD_CONFIG as u8);
    }
    let text = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("isobar: cannot read {}: {e}", args.file.display());
            return ExitCode::from(EXIT_BAD_DATA);
        }
    };
    let rows = match isobar::replay::parse(&text) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("isobar: {}: {e}", args.file.display());
            return ExitCode::from(EXIT_BAD_DATA);
        }
    };
    match isobar::replay::publish(&rows, &host, port, args.rate).await {
        Ok(acked) if acked == rows.len() as u64 => {
            eprintln!("isobar: replayed {acked} readings");
            ExitCode::SUCCESS
        }
        Ok(acked) => {
            eprintln!(
                "isobar: the broker acknowledged {acked} of {} readings",
                rows.len()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("isobar: replay failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(args: ConfigArgs) -> ExitCode {
    let settings = match load(&args, Figment::new()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match isobar::storage::open(&settings.storage, true, std::time::Duration::from_secs(30)).await {
        Ok(_) => {
            println!(
                "isobar: the {:?} store is up to date",
                settings.storage.backend
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("isobar: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(args: ConfigArgs) -> ExitCode {
    match load(&args, Figment::new()) {
        Ok(settings) => {
            match toml_string(&settings) {
                Some(text) => print!("{text}"),
                None => println!("{settings:#?}"),
            }
            eprintln!("isobar: configuration is valid");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn toml_string(settings: &Settings) -> Option<String> {
    toml::to_string(settings).ok()
}

/// The daemon's allocator, jemalloc, and its controls. A profiling build
/// (`system-allocator`) has the system's malloc instead, and no controls.
#[cfg(not(feature = "system-allocator"))]
mod jemalloc {
    use std::ffi::{CStr, c_char};

    #[global_allocator]
    static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

    /// jemalloc's settings, read as it starts (`_RJEM_MALLOC_CONF` in the
    /// environment overrides them):
    /// - `percpu_arena`: one arena per CPU (the default is four per CPU,
    ///   each holding pages of its own): fewer partly used pages, and no
    ///   thread waits on another's arena;
    /// - `background_thread`: a thread of jemalloc's own hands freed pages
    ///   back to the system, so that it happens while the daemon is idle,
    ///   not only at the next allocation;
    /// - `dirty_decay_ms:1000`: pages freed are handed back after a second
    ///   (the default is ten), so the end of a burst shows in the resident
    ///   memory at once;
    /// - `muzzy_decay_ms:0`: handed back for good (`MADV_DONTNEED`), not as
    ///   lazily freed pages (`MADV_FREE`) that count as resident until the
    ///   kernel needs them.
    #[unsafe(export_name = "_rjem_malloc_conf")]
    static CONF: Conf = Conf(
        c"percpu_arena:percpu,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr(),
    );

    /// A C string constant, as jemalloc reads its settings.
    #[repr(transparent)]
    struct Conf(*const c_char);

    // SAFETY: it points to a string constant, never written.
    unsafe impl Sync for Conf {}

    /// Runs one of jemalloc's controls that takes and returns nothing;
    /// whether jemalloc took it (a refusal is only logged: memory is
    /// handed back later, as it ages).
    pub fn control(name: &CStr) -> bool {
        // SAFETY: `name` is a C string; a control without a value reads
        // and writes nothing through the null pointers.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            tracing::debug!(control = ?name, rc, "jemalloc refused a control");
        }
        rc == 0
    }

    #[cfg(test)]
    mod tests {
        use std::ffi::{CStr, c_char};
        use std::mem::MaybeUninit;

        /// One of jemalloc's values, read through `mallctl`.
        fn read<T: Copy>(name: &CStr) -> T {
            let mut value = MaybeUninit::<T>::uninit();
            let mut len = size_of::<T>();
            // SAFETY: `value` has room for `len` bytes, the size of the
            // control's type, which jemalloc checks against `len`.
            let rc = unsafe {
                tikv_jemalloc_sys::mallctl(
                    name.as_ptr(),
                    value.as_mut_ptr().cast(),
                    &mut len,
                    std::ptr::null_mut(),
                    0,
                )
            };
            assert_eq!(rc, 0, "{name:?}");
            assert_eq!(len, size_of::<T>(), "{name:?}");
            // SAFETY: jemalloc wrote the value.
            unsafe { value.assume_init() }
        }

        #[test]
        fn jemalloc_runs_with_the_daemons_settings() {
            assert_eq!(read::<isize>(c"opt.dirty_decay_ms"), 1000);
            assert_eq!(read::<isize>(c"opt.muzzy_decay_ms"), 0);
            assert!(read::<bool>(c"opt.background_thread"));
            // SAFETY: jemalloc's settings are strings that live as long as it.
            let arenas = unsafe { CStr::from_ptr(read::<*const c_char>(c"opt.percpu_arena")) };
            assert_eq!(arenas, c"percpu");
        }

        #[test]
        fn the_controls_a_burst_ends_with_are_accepted() {
            // Refused controls are only logged: check here that they exist.
            for control in [c"thread.tcache.flush", c"arena.4096.purge"] {
                assert!(super::control(control), "{control:?}");
            }
        }
    }
}

/// The system's malloc has no controls: memory is handed back as it
/// hands it back.
#[cfg(feature = "system-allocator")]
mod jemalloc {
    pub fn control(_name: &std::ffi::CStr) -> bool {
        false
    }
}
