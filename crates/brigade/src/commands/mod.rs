//! One module per subcommand.

mod backup;
mod balance;
mod certificate;
mod dashboard;
mod demo_data;
mod drill;
mod logs;
mod migrate;
mod pg_backup;
mod rollout;
mod serve;
mod status;
mod up;
mod watch;

use brigade_core::Settings;

use crate::cli::Command;

/// A command stopped on a bad setting (a flag, a configuration key, an address it cannot
/// listen on): the binary exits 2 for it, as the README promises, and 1 for runtime failures.
/// The message names the flag or key.
#[derive(Debug)]
pub struct BadSetting(pub String);

impl std::fmt::Display for BadSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadSetting {}

/// The exit code for a command's error: 2 when a [`BadSetting`] caused it, else 1.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if error.chain().any(|cause| cause.is::<BadSetting>()) {
        2
    } else {
        1
    }
}

/// Runs a parsed command with loaded settings.
pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::run(settings, args.demo).await,
        Command::Migrate(_) => migrate::run(settings).await,
        Command::DemoData(args) => demo_data::run(settings, args.reset_passwords).await,
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
        Command::Certificate(args) => certificate::run(&args),
    }
}
