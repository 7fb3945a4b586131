//! `brigade`: the one binary of brigade, a food-ordering service and everything needed to run
//! it in production.
//!
//! ```text
//! brigade serve --listen 127.0.0.1:3000 --data-dir ./brigade-data   # one ordering replica
//! brigade migrate                                                     # apply schema migrations
//! brigade demo-data                                                   # two shops and a menu
//! ```
//! This file only parses the command line and hands over to `commands/`; the work lives in the
//! library crates.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

/// Every subcommand allocates per request (headers, bodies, futures); mimalloc serves those
/// small, short-lived allocations faster than the system allocator (bench/balance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let settings = match cli.settings() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("brigade: {error}");
            return ExitCode::from(2);
        }
    };
    let without_endpoint = without_endpoint(&cli.command);
    if let Err(error) =
        brigade_core::telemetry::init(&settings.log, &service_name(), without_endpoint)
    {
        eprintln!("brigade: {error}");
        return ExitCode::from(2);
    }
    log_open_file_limit(brigade_core::open_files::raise_soft_limit());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("brigade: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(commands::run(cli.command, settings));
    brigade_core::traces::shutdown();
    let code = match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                "brigade stopped with an error"
            );
            eprintln!("brigade: {error:#}");
            ExitCode::from(commands::exit_code(&error))
        }
    };
    // Servers batch their log lines (brigade_core::log_output): the last batch goes out now.
    brigade_core::log_output::flush();
    code
}

/// Says what became of the open-file limit: quietly when it was raised, loudly when the
/// process must live with a limit below what its connection caps assume.
fn log_open_file_limit(outcome: brigade_core::open_files::OpenFiles) {
    use brigade_core::open_files::OpenFiles;
    match outcome {
        OpenFiles::Raised(from, to) => tracing::debug!(from, to, "raised the open-file limit"),
        OpenFiles::Unchanged(limit) => tracing::debug!(limit, "open-file limit"),
        OpenFiles::Refused(limit, error) => tracing::warn!(
            limit,
            %error,
            "cannot raise the open-file limit; connections beyond it wait to be accepted"
        ),
    }
}

/// The processes that find their trace destination after they start: `up` (watch's address),
/// watch (its own window) and drills (watch's address from up's status). The others export
/// only when the `OTEL_*` variables say where; `up` sets them for its children.
fn without_endpoint(command: &cli::Command) -> brigade_core::traces::WithoutEndpoint {
    use brigade_core::traces::WithoutEndpoint;
    match command {
        cli::Command::Up(_) | cli::Command::Drill(_) => WithoutEndpoint::Later,
        cli::Command::Watch(args) if args.action.is_none() => WithoutEndpoint::Later,
        _ => WithoutEndpoint::Off,
    }
}

/// `brigade-<subcommand>` (`brigade-serve`, `brigade-balance`, …): the service name of this
/// process's exported traces unless `OTEL_SERVICE_NAME` says otherwise.
fn service_name() -> String {
    use clap::CommandFactory as _;
    let subcommand = cli::Cli::command()
        .try_get_matches()
        .ok()
        .and_then(|matches| matches.subcommand_name().map(str::to_owned));
    match subcommand {
        Some(name) => format!("brigade-{name}"),
        None => "brigade".to_owned(),
    }
}
