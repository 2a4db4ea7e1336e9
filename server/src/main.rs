//! `server`: parses the configuration, starts the application, serves until stopped.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use server::config::Config;
use server::startup::Application;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env_and_args() {
        Ok(config) => config,
        Err(code) => return code,
    };
    server::telemetry::init(config.log_format);
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(err) => {
            // One line, naming what to fix; the chain is in the message.
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
