//! `promsync`: parse the command line, load settings, start telemetry, run the command.

use clap::Parser;
use promsync::{cli, config::Settings, telemetry};

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
    telemetry::init(settings.log_format);
    match cli::execute(args.command, settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("promsync: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
