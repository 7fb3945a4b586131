//! One module per subcommand.

mod backup;
mod balance;
mod dashboard;
mod demo_data;
mod drill;
mod logs;
mod migrate;
mod rollout;
mod serve;
mod status;
mod up;
mod watch;

use brigade_core::Settings;

use crate::cli::Command;

/// Runs a parsed command with loaded settings.
pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::run(settings, args.demo).await,
        Command::Migrate(_) => migrate::run(settings).await,
        Command::DemoData(_) => demo_data::run(settings).await,
        Command::Watch(args) => watch::run(settings, args).await,
        Command::Balance(args) => balance::run(args).await,
        Command::Up(args) => up::run(settings, args).await,
        Command::Status(args) => status::run(args).await,
        Command::Logs(args) => logs::run(args).await,
        Command::Rollout(args) => rollout::restart(args).await,
        Command::Scale(args) => rollout::scale(args).await,
        Command::Drill(args) => drill::run(args).await,
        Command::Backup(args) => backup::backup(settings, args).await,
        Command::Restore(args) => backup::restore(settings, args).await,
        Command::Dashboard(args) => dashboard::run(args).await,
    }
}
