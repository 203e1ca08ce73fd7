use clap::Parser as _;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let filter = EnvFilter::try_from_env("FLAGON_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("FLAGON_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    // A private key pasted where a path or name was meant would be quoted back by the
    // argument parser's errors (and land in a terminal log or CI output): refuse it unquoted.
    if let Some(n) = std::env::args_os()
        .skip(1)
        .position(|a| flagon::signature::looks_like_private_key(a.as_encoded_bytes()))
    {
        eprintln!(
            "error: argument {} looks like a private key (not shown); pass the key's file with \
             `--key PATH` or an environment variable's name with `--key-env VAR`, and treat \
             the key as leaked if it was typed or pasted into a shared terminal",
            n + 1
        );
        return std::process::ExitCode::FAILURE;
    }
    match flagon::cli::run(flagon::cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
