//! `brigade watch`: run the watch, check rule files, manage silences.

use std::path::PathBuf;

use anyhow::Context;
use brigade_core::{Settings, Shutdown};
use brigade_watch::contract::NewSilence;
use brigade_watch::{Watch, WatchConfig, client, rules};
use clap::Parser;

use crate::cli::{Cli, WatchAction, WatchArgs, WatchRulesAction, WatchSilenceAction};
use crate::commands::BadSetting;

/// The file read when `--config` is not given.
const DEFAULT_WATCH_CONFIG: &str = "watch.toml";

/// Dispatches `brigade watch …`.
pub async fn run(settings: Settings, args: WatchArgs) -> anyhow::Result<()> {
    match args.action {
        None => serve(settings, args.listen).await,
        Some(WatchAction::Rules(WatchRulesAction::Check { files })) => check_rules(&files),
        Some(WatchAction::Silence(action)) => silence(action).await,
    }
}

/// The `--config` flag is global (it names brigade.toml for the other commands), so it is
/// read back from the command line here rather than threaded through the settings.
fn watch_config_path() -> PathBuf {
    Cli::try_parse()
        .ok()
        .and_then(|cli| cli.config)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_WATCH_CONFIG))
}

async fn serve(settings: Settings, listen: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let path = watch_config_path();
    // A config that cannot be used is the user's to fix: exit code 2, naming the key.
    let mut config = WatchConfig::load(&path)
        .map_err(|error| BadSetting(format!("{:#}", anyhow::Error::from(error))))?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    // `brigade up` hands watch a socket it holds (descriptor 3, systemd's `LISTEN_FDS`), so
    // the address its children send traces to stays the same across watch restarts.
    let inherited = listenfd::ListenFd::from_env()
        .take_tcp_listener(0)
        .context("LISTEN_FDS: descriptor 3 is not a TCP listener")?;
    let watch = Watch::build_on(config, &settings.storage, inherited).await?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    watch
        .run_until_stopped(shutdown)
        .await
        .context("serving the watch API")?;
    Ok(())
}

/// Prints promtool's report shape; fails if any file fails.
fn check_rules(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for file in files {
        println!("Checking {}", file.display());
        match rules::load_files(&[file.as_path()]) {
            Ok(groups) => {
                let count: usize = groups.iter().map(|g| g.rules.len()).sum();
                println!("  SUCCESS: {count} rules found");
            }
            Err(error) => {
                failed += 1;
                println!("  FAILED:");
                println!("{error}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} rule file(s) failed the check");
    }
    Ok(())
}

async fn silence(action: WatchSilenceAction) -> anyhow::Result<()> {
    match action {
        WatchSilenceAction::Add {
            matchers,
            duration,
            comment,
            created_by,
            url,
        } => {
            let silence = NewSilence {
                matchers,
                starts_at: None,
                ends_at: None,
                duration: Some(duration),
                created_by,
                comment,
            };
            let id = client::add_silence(&url, &silence).await?;
            println!("{id}");
        }
        WatchSilenceAction::List { url } => {
            for silence in client::list_silences(&url).await? {
                println!(
                    "{}  {:<8}  until {}  {}  by {}: {}",
                    silence.id,
                    silence.status.state.as_str(),
                    silence.ends_at,
                    silence.matchers.join(","),
                    silence.created_by,
                    silence.comment,
                );
            }
        }
        WatchSilenceAction::Expire { id, url } => {
            client::expire_silence(&url, &id).await?;
            println!("expired {id}");
        }
    }
    Ok(())
}
