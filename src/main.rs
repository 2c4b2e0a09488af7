//! The `vigil` binary: parse the command line, set up logging, run one subcommand, print the
//! error chain once and exit with its documented code (see `vigil::error::Exit`).

use clap::Parser;
use std::process::ExitCode;
use vigil::cli::{Cli, Command, LogFormat};
use vigil::error::{exit_code, Exit};

fn main() -> ExitCode {
    vigil::rtfm::settle_thread_count();
    let cli = Cli::parse();
    init_logging(cli.log.as_deref(), cli.log_format);
    let result = match &cli.command {
        Command::Replay(a) => vigil::cmd::replay::run(a),
        Command::Score(a) => vigil::cmd::score::run(a),
        Command::Import(a) => vigil::cmd::import::run(a),
        Command::Bench(a) => vigil::cmd::bench::run(a),
        Command::Synth(a) => vigil::cmd::synth::run(a),
        Command::Features(a) => vigil::cmd::features::run(a),
        Command::Eval(a) => vigil::cmd::eval::run(a),
        Command::Train(a) => vigil::cmd::train::run(a),
        Command::Run(a) => vigil::cmd::run::run(a),
        Command::CheckConfig(a) => vigil::cmd::run::check(a),
        Command::BenchCameras(a) => vigil::cmd::run::bench_cameras(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            let code = exit_code(&err);
            if code == Exit::Internal {
                eprintln!("  (unexpected failure; please report it with the command line above)");
            }
            ExitCode::from(code as u8)
        }
    }
}

fn init_logging(filter: Option<&str>, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = match filter {
        Some(f) => EnvFilter::new(f),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,vigil=info")),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
