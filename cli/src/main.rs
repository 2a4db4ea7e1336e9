//! `ephemeral-chat`: Ephemeral Chat in a terminal, for secrets passed from a shell or a script
//! to someone in a browser (and back). The same protocol and crypto as the page, through the
//! same room model (`app::room::RoomModel`): the code and every plaintext stay on this machine,
//! and nothing is written to disk but a file `receive --output` is told to write.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use app::crypto::message::is_valid_name;
use clap::{Parser, Subcommand};
use futures::future::LocalBoxFuture;

mod chat;
mod failure;
mod new;
mod receive;
mod room;
mod send;
mod target;
mod terminal;

use failure::Failure;
use room::{Choices, Room};
use target::{CodeSources, Relay, Target};

const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  anything else (a file that cannot be written, a message that cannot be decrypted)
  2  usage error, or an invalid room code
  3  the relay cannot be reached
  4  refused by the relay (room full, quota, too large, …): its code is on standard error
  5  timed out (--timeout), or the message expired unread

The code can come from EPHEMERAL_CHAT_CODE or --code-file instead of the command line, which
keeps it out of your shell's history and out of the process list. Then every argument is text.";

#[derive(Parser)]
#[command(name = "ephemeral-chat", version, about = "Ephemeral Chat in a terminal: end-to-end encrypted, burn-after-viewing messages to a room.", after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options every command that joins a room takes.
#[derive(clap::Args)]
struct RoomArgs {
    /// The relay (https://relay.example). Needed for a bare code or a static bundle's link; an
    /// invite link from the relay's own pages names it. Also EPHEMERAL_CHAT_RELAY (after a link).
    #[arg(long, value_name = "URL")]
    relay: Option<String>,
    /// Read the room code from this file's first line (see below).
    #[arg(long, value_name = "PATH")]
    code_file: Option<PathBuf>,
    /// Give up after this long (30s, 5m, 1h): exit code 5.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Say nothing on standard error but failures.
    #[arg(long, short)]
    quiet: bool,
}

/// What the sender chooses for each message.
#[derive(clap::Args, Default)]
struct ChoiceArgs {
    /// How long it may wait unread (at most the relay's own limit, which is the default).
    #[arg(long, value_name = "LIFETIME", value_parser = ["5m", "1h", "1d", "7d"])]
    expires: Option<String>,
    /// How long it stays on screen once opened (default 10s).
    #[arg(long, value_name = "TIME", value_parser = ["5s", "10s", "30s", "1m"])]
    view_time: Option<String>,
    /// Your name, shown on your messages: sealed, so only the room reads it. A label anyone
    /// could choose, not an identity.
    #[arg(long)]
    name: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Print a fresh room code, its invite link and its fingerprint.
    New {
        /// The relay whose invite link to print (also EPHEMERAL_CHAT_RELAY).
        #[arg(long, value_name = "URL")]
        relay: Option<String>,
        /// Also draw the link as a QR code.
        #[arg(long)]
        qr: bool,
    },
    /// Send a message (TEXT, or standard input without it) or a file, and wait until it is stored.
    Send {
        /// The room code or invite link, then the text (every argument is text when the code
        /// comes from EPHEMERAL_CHAT_CODE or --code-file).
        #[arg(value_name = "CODE_OR_LINK [TEXT]", num_args = 0..=2)]
        args: Vec<String>,
        /// Send this file instead of a text.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// Wait until it is read and burned, not only stored.
        #[arg(long)]
        wait_read: bool,
        #[command(flatten)]
        choices: ChoiceArgs,
        #[command(flatten)]
        room: RoomArgs,
    },
    /// Wait for the next message, open it (that burns it) and print it on standard output.
    Receive {
        /// The room code or invite link.
        #[arg(value_name = "CODE_OR_LINK")]
        code: Option<String>,
        /// Open every message that waits, not only the next.
        #[arg(long)]
        all: bool,
        /// Where a file goes (a new file; `-` for standard output). Without it a file is left
        /// unopened: it is never written anywhere else.
        #[arg(long, short, value_name = "PATH")]
        output: Option<PathBuf>,
        #[command(flatten)]
        room: RoomArgs,
    },
    /// Chat in the room, a line at a time.
    Chat {
        /// The room code or invite link.
        #[arg(value_name = "CODE_OR_LINK")]
        code: Option<String>,
        #[command(flatten)]
        choices: ChoiceArgs,
        #[command(flatten)]
        room: RoomArgs,
    },
}

impl ChoiceArgs {
    /// The choices, or a usage error for a name the spec does not allow (before any connection).
    fn choices(&self) -> Result<Choices, Failure> {
        let name = self.name.as_deref().map(str::trim).filter(|name| !name.is_empty());
        if name.is_some_and(|name| !is_valid_name(name)) {
            return Err(Failure::Usage(format!("--name: {}", app::room::BadName)));
        }
        let seconds = |given: &Option<String>| given.as_deref().and_then(parse_duration_ok).map(|d| d.as_secs() as u32);
        Ok(Choices { name: name.map(str::to_owned), expires: seconds(&self.expires), view: seconds(&self.view_time) })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // Help and version are not failures; everything else clap refuses is a usage error.
            return if err.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let code = match run(cli).await {
        Ok(()) => 0,
        Err(failure) => {
            eprintln!("ephemeral-chat: {failure}");
            failure.exit_code()
        }
    };
    // Standard input may still be read by a task that will never finish: exit now.
    std::process::exit(code.into())
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let relay_env = std::env::var("EPHEMERAL_CHAT_RELAY").ok();
    let code_env = std::env::var("EPHEMERAL_CHAT_CODE").ok().filter(|code| !code.trim().is_empty());
    match cli.command {
        Command::New { relay, qr } => {
            let relay = relay.or(relay_env).map(|relay| Relay::parse(&relay)).transpose()?;
            print!("{}", new::run(relay.as_ref(), qr));
            Ok(())
        }
        Command::Send { args, file, wait_read, choices, room } => {
            let (given, text) = match (code_env.is_some() || room.code_file.is_some(), args.as_slice()) {
                (true, [text]) => (None, Some(text.clone())),
                (true, []) => (None, None),
                (true, _) => {
                    return Err(Failure::Usage(
                        "the code comes from EPHEMERAL_CHAT_CODE or --code-file: give only the text".into(),
                    ))
                }
                (false, [code]) => (Some(code.clone()), None),
                (false, [code, text]) => (Some(code.clone()), Some(text.clone())),
                (false, _) => return Err(Failure::Usage("give the room code or invite link, then the text".into())),
            };
            let choices = choices.choices()?;
            let target = resolve(&room, given, code_env, relay_env)?;
            let what = match (file, text) {
                (Some(_), Some(_)) => return Err(Failure::Usage("give a text or --file, not both".into())),
                (Some(path), None) => send::What::from_file(&path)?,
                (None, Some(text)) => send::What::Text(zeroize::Zeroizing::new(text)),
                (None, None) => send::What::from_stdin(std::io::stdin().lock())?,
            };
            if matches!(&what, send::What::Text(text) if text.trim().is_empty()) {
                return Err(Failure::Usage("nothing to send: the message is empty".into()));
            }
            let quiet = room.quiet;
            in_room(&target, &room, move |joined| Box::pin(send::run(joined, what, choices, wait_read, quiet))).await
        }
        Command::Receive { code, all, output, room } => {
            let target = resolve(&room, code, code_env, relay_env)?;
            let output = output.as_deref().map(receive::Output::parse);
            let quiet = room.quiet;
            in_room(&target, &room, move |joined| Box::pin(receive::run(joined, all, output, quiet))).await
        }
        Command::Chat { code, choices, room } => {
            let choices = choices.choices()?;
            let target = resolve(&room, code, code_env, relay_env)?;
            in_room(&target, &room, move |joined| Box::pin(chat::run(joined, choices))).await
        }
    }
}

fn resolve(
    room: &RoomArgs,
    given: Option<String>,
    env: Option<String>,
    relay_env: Option<String>,
) -> Result<Target, Failure> {
    let sources = CodeSources { file: room.code_file.as_deref(), env, given };
    target::resolve(sources, room.relay.as_deref(), relay_env.as_deref())
}

/// Joins the room of `target`, runs `work` in it (giving up after `--timeout`), and leaves
/// whatever happened: a close frame, so the relay drops this participant at once (one that
/// vanished would stay a participant for the relay's grace period, and the recipient of what is
/// sent meanwhile).
async fn in_room(
    target: &Target,
    args: &RoomArgs,
    work: impl for<'r> FnOnce(&'r mut Room) -> LocalBoxFuture<'r, Result<(), Failure>>,
) -> Result<(), Failure> {
    let mut room = Room::enter(target, args.quiet).await?;
    let result = within(args.timeout, work(&mut room)).await;
    room.leave().await;
    result
}

/// Runs `work`, giving up after `timeout`.
async fn within(
    timeout: Option<Duration>,
    work: impl std::future::Future<Output = Result<(), Failure>>,
) -> Result<(), Failure> {
    match timeout {
        None => work.await,
        Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(Failure::TimedOut(format!("gave up after {}", app::room::lifetime_words(limit.as_secs()))))
        }),
    }
}

/// `30s`, `5m`, `1h`, `7d`: a whole number and its unit.
fn parse_duration(given: &str) -> Result<Duration, String> {
    parse_duration_ok(given).ok_or_else(|| format!("{given:?} is not a duration such as 30s, 5m, 1h or 7d"))
}

fn parse_duration_ok(given: &str) -> Option<Duration> {
    let split = given.find(|c: char| !c.is_ascii_digit())?;
    let (count, unit) = given.split_at(split);
    let count: u64 = count.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    if count == 0 {
        return None;
    }
    count.checked_mul(unit).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_a_number_and_a_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "5", "m", "0s", "1.5h", "-1m", "5 m", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_command_line_is_what_help_says() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
