//! `keel run`: start the engine and keep it running until told to stop.

use std::sync::Arc;
use std::time::Duration;

use actors::{start_engine, EngineSetup, FailureClass};
use anyhow::Context;
use keel_core::clock::{Clock, SharedClock, SystemClock};
use keel_core::error::StoreError;
use keel_core::store::{SharedStore, Store};
use keel_core::trading::EmergencyStop;
use keel_core::venue::Venue;
use keel_core::Symbol;
use keel_store::SledStore;

use crate::cli::RunArgs;
use crate::settings;

/// Runs the engine; returns when it has stopped gracefully.
pub fn run(
    args: RunArgs,
    log_format: Option<crate::config::LogFormat>,
    registry: &strategies::StrategyRegistry,
) -> anyhow::Result<()> {
    let (mut config, source) = settings::load(args.config.as_deref(), registry)?;
    config.engine.data_dir = settings::data_dir(&config, args.data_dir.as_ref());
    // Before the first line: every secret the config names is redacted from the log.
    crate::log_scrub::register_config(&config);
    let _log = crate::logging::init(log_format.unwrap_or(config.engine.log_format), &config.engine.log_level);
    tracing::info!(source = %source, "{}", source.describe());
    for line in config.deprecations() {
        tracing::warn!("{line}");
    }
    let repainting = crate::pine_warnings::of(&config.strategies).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    for w in &repainting {
        tracing::warn!(strategy = %w.strategy, "{}", w.diagnostic);
    }
    if args.strict && !repainting.is_empty() {
        anyhow::bail!("{}", crate::pine_warnings::strict_refusal(repainting.len()));
    }
    let system = actix::System::new();
    system.block_on(serve(config, args.exit_after, registry))
}

/// Opens the store; a store that exists but cannot be read gives an in-memory
/// one with the emergency stop set, so the engine comes up HALTED and says why.
/// A store held by a running engine, or written by a newer Keel, is refused.
pub fn open_store(dir: &std::path::Path) -> anyhow::Result<SharedStore> {
    match SledStore::open(dir) {
        Ok(s) => Ok(Arc::new(s)),
        // Both are sure, not unreadable: say so and stop, nothing to halt on.
        Err(e @ (StoreError::Locked { .. } | StoreError::NewerSchema { .. })) => Err(anyhow::anyhow!("{e}")),
        Err(e) => {
            tracing::error!(data_dir = %dir.display(), error = %e, "STORE UNREADABLE: starting HALTED on a temporary store; fix or move the data dir, then restart");
            let temp = SledStore::temporary().context("cannot create even a temporary store")?;
            temp.put_emergency_stop(&EmergencyStop {
                active: true,
                reason: Some(format!("store at {} unreadable: {e}", dir.display())),
                set_by: Some("startup:fail_closed".into()),
                set_at_ms: Some(SystemClock.now_ms()),
                ..Default::default()
            })?;
            Ok(Arc::new(temp))
        }
    }
}

/// What the actors need from the config, with the strategies built from it
/// by `registry` (which checks each kind's parameters).
pub fn engine_setup(
    config: &crate::config::Config,
    store: SharedStore,
    venue: Arc<dyn Venue>,
    clock: SharedClock,
    registry: &strategies::StrategyRegistry,
) -> anyhow::Result<EngineSetup> {
    let mut strategies = Vec::new();
    for (i, cfg) in config.strategies.iter().enumerate().filter(|(_, c)| !c.is_template()) {
        strategies.push((cfg.clone(), registry.build(i, cfg)?));
    }
    let universe = config.universe.as_ref().map(|u| actors::universe::UniverseSetup {
        rules: u.rules(),
        refresh: u.refresh.as_std(),
        cancel_orders_on_leave: u.cancel_orders_on_leave,
        templates: config.strategies.iter().filter(|c| c.is_template()).cloned().collect(),
        build: {
            let registry = registry.clone();
            std::sync::Arc::new(move |cfg: &keel_core::config::StrategyConfig| {
                registry.build(0, cfg).map_err(|e| e.to_string())
            })
        },
    });
    Ok(EngineSetup {
        symbols: config.symbols.iter().map(|s| Symbol::new(&s.symbol)).collect(),
        risk: config.risk.clone(),
        bar_interval_ms: config.engine.bar_interval.0,
        store,
        venue,
        strategies,
        clock,
        startup_deadline: std::time::Duration::from_millis(config.engine.startup_deadline.0.max(0) as u64),
        equity_interval: config.store.equity_interval.as_std(),
        universe,
    })
}

async fn serve(
    config: crate::config::Config,
    exit_after: Option<Duration>,
    registry: &strategies::StrategyRegistry,
) -> anyhow::Result<()> {
    // Listen for SIGTERM/SIGINT from the start: one that arrives during
    // start-up stops the engine gracefully once it is up, instead of killing it.
    let signals = StopSignals::install();
    // The notifiers come first, so that a start that fails says so.
    let notifiers = crate::surfaces::Notifiers::build(&config);
    let notifications = notifiers.notifications().clone();
    let Started { store, built, handle, surfaces } = match start(&config, notifiers, registry).await {
        Ok(started) => started,
        Err(e) => {
            crate::surfaces::notify_start_failure(&notifications, &e).await;
            return Err(e);
        }
    };
    tracing::info!(
        data_dir = %config.engine.data_dir.display(),
        venue = handle.venue().name(),
        venue_mode = config.venue.mode.as_str(),
        mode = config.venue_banner(),
        "keel running; Ctrl-C or SIGTERM stops it"
    );

    signals.wait(exit_after).await;
    tracing::info!("stopping: strategies pause, in-flight orders settle, the store is flushed");
    handle.shutdown(Duration::from_secs(5)).await;
    surfaces.stop().await;
    built.stop().await;
    store.flush()?;
    tracing::info!("keel stopped");
    actix::System::current().stop();
    Ok(())
}

/// What a successful start leaves running.
struct Started {
    store: SharedStore,
    built: crate::venues::BuiltVenue,
    handle: actors::EngineHandle,
    surfaces: crate::surfaces::Surfaces,
}

/// Opens the store, builds the venue, starts the engine (reconciling with
/// the venue) and then the operator surfaces with `notifiers`.
async fn start(
    config: &crate::config::Config,
    notifiers: crate::surfaces::Notifiers,
    registry: &strategies::StrategyRegistry,
) -> anyhow::Result<Started> {
    if config.http.enabled {
        // A weak API token or webhook secret stops the start before anything is opened.
        crate::http::secrets::load(&config.http)?;
    }
    let store = open_store(&config.engine.data_dir)?;
    crate::restarts::pace(store.as_ref(), SystemClock.now_ms(), config.engine.free_starts_per_minute as usize).await;
    tracing::info!(venue_mode = config.venue_description(), "venue mode: {}", config.venue_banner());
    let built = crate::venues::build(config, Some(store.as_ref())).await?;
    let setup = engine_setup(config, store.clone(), built.venue.clone(), Arc::new(SystemClock), registry)?;
    let handle = match start_engine(setup).await {
        Ok(h) => h,
        Err(e) => {
            let class = e.class();
            let next = match class {
                FailureClass::Store => "the store cannot be trusted: fix it before starting again (nothing was sent)",
                FailureClass::Venue => "the venue did not answer as expected: start again once it is reachable",
                FailureClass::Config => "the config asks for something the venue does not offer: fix the config",
            };
            tracing::error!(class = class.as_str(), error = %e, "start-up failed; {next}");
            built.stop().await;
            return Err(anyhow::Error::new(e).context(format!("start-up failed ({})", class.as_str())));
        }
    };
    let surfaces = match crate::surfaces::start_with(config, &handle, notifiers).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "operator surfaces failed to start; stopping the engine");
            handle.shutdown(Duration::from_secs(5)).await;
            built.stop().await;
            store.flush()?;
            return Err(e);
        }
    };
    // After the surfaces, so the notifiers hear the first setup alert.
    if let Err(e) = crate::futures_feed::start(config, &built, &handle).await {
        // Futures data informs strategies; trading does not wait on it.
        tracing::error!(error = %e, "futures data not started; strategies get none");
    }
    Ok(Started { store, built, handle, surfaces })
}

/// SIGTERM and SIGINT handlers, installed once.
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self { term: signal(SignalKind::terminate()).ok(), int: signal(SignalKind::interrupt()).ok() }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Waits for a signal, or for `exit_after` to pass.
    async fn wait(self, exit_after: Option<Duration>) {
        let timer = async {
            match exit_after {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(unix)]
        {
            let (mut term, mut int) = (self.term, self.int);
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => tokio::signal::ctrl_c().await.unwrap_or(()),
                }
            };
            tokio::select! {
                _ = timer => tracing::info!("--exit-after elapsed"),
                _ = int => tracing::info!("Ctrl-C"),
                _ = term => tracing::info!("SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        tokio::select! {
            _ = timer => tracing::info!("--exit-after elapsed"),
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C"),
        }
    }
}
