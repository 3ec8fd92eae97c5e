//! `promsync`: parse the command line, load settings, start telemetry, run the command.

use clap::Parser;
use promsync::{cli, config::Settings, telemetry};

// Every role allocates per message (bodies, JSON, frames); mimalloc's thread-local free
// lists cost less CPU per request than glibc's malloc under many threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("promsync: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let default_filter = match args.command {
        cli::Command::Demo(_) => "warn",
        _ => "info",
    };
    telemetry::init_with_default(settings.log.format, default_filter);
    match cli::execute(args.command, settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("promsync: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
