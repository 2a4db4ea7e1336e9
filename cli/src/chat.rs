//! `ephemeral-chat chat`: a line-based chat with the room. What arrives stays sealed until the
//! person presses Enter on an empty line (their act of viewing); what they type is sealed and
//! sent on Enter. Receipts, presence and typing show as lines in brackets.
//!
//! Typing is told to the room when part of a line has been read but not its end. In a terminal,
//! the chat turns off the terminal's line editing (`stty -icanon`, restored when it ends, Ctrl-C
//! included) so keystrokes arrive as they are typed, and erases with Backspace itself; a program
//! writing to its input is heard as it writes.

use std::collections::HashMap;
use std::path::Path;

use app::crypto::MessageId;
use app::room::{card::size_in_words, CardState, ConnectionState, RoomModel};
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::failure::Failure;
use crate::room::{Choices, Room};
use crate::terminal::{now_ms, printable};

/// What the person did.
enum Input {
    /// A whole line, without its newline.
    Line(Zeroizing<String>),
    /// Part of a line: they are typing.
    Partial,
    /// The end of input (Ctrl-D): leave.
    End,
}

const HELP: &str = "Type a message and press Enter to send it. Press Enter on an empty line to open \
                    the oldest sealed message (that burns it). /name NAME sets your name, /save PATH \
                    saves the last file opened, /quit leaves.";

/// Chats in the room until the input ends, `/quit` or Ctrl-C.
pub async fn run(room: &mut Room, choices: Choices) -> Result<(), Failure> {
    room.choose(&choices)?;
    println!("[{HELP}]");
    let terminal = Keystrokes::start();
    let mut input = read_input(terminal.is_some());
    let mut shown = Shown::default();
    shown.report(room.model());
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            wake = room.wait() => {
                room.handle(wake).await?;
            }
            got = input.recv() => match got.unwrap_or(Input::End) {
                Input::End => break,
                Input::Partial => {
                    room.act(|model| model.typed(now_ms())).await?;
                }
                Input::Line(line) => {
                    if !line_typed(room, &line).await? {
                        break;
                    }
                }
            },
        }
        shown.report(room.model());
    }
    println!("[leaving the room]");
    Ok(())
}

/// Acts on a line; `false` to leave.
async fn line_typed(room: &mut Room, line: &str) -> Result<bool, Failure> {
    let trimmed = line.trim();
    match trimmed.split_once(' ').unwrap_or((trimmed, "")) {
        ("", _) => {
            let oldest = room.model().cards().iter().find(|card| card.state == CardState::Sealed).map(|card| card.id);
            match oldest {
                Some(id) => drop(room.act(|model| model.open(id)).await?),
                None => println!("[nothing sealed to open]"),
            }
        }
        ("/quit", _) => return Ok(false),
        ("/help", _) => println!("[{HELP}]"),
        ("/name", name) => {
            let mut refused = false;
            room.act(|model| {
                refused = model.set_name(name).is_err();
                Vec::new()
            })
            .await?;
            match (refused, room.model().name()) {
                (true, _) => println!("[that name cannot be used: 1 to 64 characters, no control characters]"),
                (false, Some(name)) => println!("[your name is now {name}: a label, not an identity]"),
                (false, None) => println!("[you have no name now: you are Someone]"),
            }
        }
        ("/save", path) if !path.is_empty() => save(room, Path::new(path)).await?,
        (command, _) if command.starts_with('/') => println!("[unknown command {command}; /help]"),
        _ => {
            let now = now_ms();
            let mut why = None;
            room.act(|model| {
                model.send(line, now).unwrap_or_else(|not_sent| {
                    why = Some(not_sent);
                    Vec::new()
                })
            })
            .await?;
            if let Some(why) = why {
                println!("[not sent: {}]", room.model().notice().map_or_else(|| why.to_string(), str::to_owned));
            }
        }
    }
    Ok(true)
}

/// Writes the last file opened to `path` (a new file, readable by its owner only); a file a
/// page would offer to save is confirmed viewed then, and burns.
async fn save(room: &mut Room, path: &Path) -> Result<(), Failure> {
    let found = room.model().cards().iter().rev().find_map(|card| match (&card.state, &card.file) {
        (CardState::File(bytes), Some(file)) => Some((card.id, bytes.clone(), file.is_image())),
        _ => None,
    });
    let Some((id, bytes, image)) = found else {
        println!("[no file opened to save]");
        return Ok(());
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(path).and_then(|mut file| std::io::Write::write_all(&mut file, &bytes.0));
    match written {
        Ok(()) => {
            println!("[saved to {}]", path.display());
            if !image {
                room.act(|model| model.save(id)).await?;
            }
        }
        Err(err) => println!("[cannot save to {}: {err}]", path.display()),
    }
    Ok(())
}

/// The terminal's settings while the chat reads keystrokes: restored when dropped.
struct Keystrokes {
    saved: String,
}

impl Keystrokes {
    /// Turns off line editing on the terminal standard input is, if it is one (and `stty` is
    /// there to do it); the terminal still echoes what is typed.
    fn start() -> Option<Self> {
        use std::io::IsTerminal as _;
        if !std::io::stdin().is_terminal() {
            return None;
        }
        let stty = |args: &[&str]| {
            std::process::Command::new("stty").args(args).stdin(std::process::Stdio::inherit()).output().ok()
        };
        let saved = stty(&["-g"]).filter(|out| out.status.success())?;
        let saved = String::from_utf8(saved.stdout).ok()?.trim().to_owned();
        stty(&["-icanon", "-echoctl", "min", "1", "time", "0"]).filter(|out| out.status.success())?;
        Some(Self { saved })
    }
}

impl Drop for Keystrokes {
    fn drop(&mut self) {
        let _ = std::process::Command::new("stty").arg(&self.saved).stdin(std::process::Stdio::inherit()).status();
    }
}

/// Reads standard input in a task of its own: whole lines, and news of part of one. From a
/// terminal without line editing (`keystrokes`), Backspace erases and Ctrl-D on an empty line
/// ends, as the terminal's own line editing would.
fn read_input(keystrokes: bool) -> mpsc::UnboundedReceiver<Input> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut pending = Zeroizing::new(Vec::new());
        let mut buf = Zeroizing::new(vec![0u8; 4096]);
        loop {
            let n = match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Input::End);
                    return;
                }
                Ok(n) => n,
            };
            if keystrokes {
                if edit(&mut pending, &buf[..n]) {
                    let _ = tx.send(Input::End);
                    return;
                }
            } else {
                pending.extend_from_slice(&buf[..n]);
            }
            while let Some(at) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=at).collect();
                let line = Zeroizing::new(String::from_utf8_lossy(&line[..at]).trim_end_matches('\r').to_owned());
                let _ = tx.send(Input::Line(line));
            }
            if !pending.is_empty() {
                let _ = tx.send(Input::Partial);
            }
        }
    });
    rx
}

/// Applies keystrokes to the line being typed: Backspace (DEL or BS) takes its last character
/// back off the screen too, Ctrl-D on an empty line ends (`true`) and is ignored elsewhere;
/// anything else is kept.
fn edit(pending: &mut Vec<u8>, keys: &[u8]) -> bool {
    use std::io::Write as _;
    for &key in keys {
        match key {
            0x7f | 0x08 => {
                let line_start = pending.iter().rposition(|&b| b == b'\n').map_or(0, |at| at + 1);
                if pending.len() > line_start {
                    // A whole UTF-8 character: its continuation bytes, then its first.
                    while pending.len() > line_start + 1 && pending.last().is_some_and(|b| b & 0xc0 == 0x80) {
                        pending.pop();
                    }
                    pending.pop();
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(b"\x08 \x08").and_then(|()| out.flush());
                }
            }
            0x04 if pending.last().is_none_or(|&b| b == b'\n') => return true,
            0x04 => {}
            _ => pending.push(key),
        }
    }
    false
}

/// What was last reported of the room, so each change is said once.
#[derive(Default)]
struct Shown {
    /// Each card's line as last said (`None`: a state that says nothing, such as opening).
    cards: HashMap<MessageId, Option<String>>,
    participants: u32,
    typing: bool,
    connection: Option<ConnectionState>,
    notice: Option<String>,
}

impl Shown {
    /// Prints what changed since the last report.
    fn report(&mut self, model: &RoomModel) {
        let connection = model.connection();
        if self.connection != Some(connection) {
            self.connection = Some(connection);
            match connection {
                ConnectionState::Online => println!("[connected · fingerprint {}]", model.fingerprint()),
                ConnectionState::Reconnecting => println!("[connection lost, reconnecting…]"),
                ConnectionState::Unreachable => println!("[cannot reach the relay; still trying…]"),
                ConnectionState::Full => println!("[the room is full]"),
                ConnectionState::Connecting | ConnectionState::Deriving => {}
            }
        }
        if model.participants() != self.participants && model.participants() > 0 {
            self.participants = model.participants();
            match self.participants {
                1 => println!("[only you are here]"),
                n => println!("[{n} people here]"),
            }
        }
        if model.peer_typing() && !self.typing {
            println!("[someone is typing…]");
        }
        self.typing = model.peer_typing();
        if model.notice() != self.notice.as_deref() {
            self.notice = model.notice().map(str::to_owned);
            if let Some(notice) = &self.notice {
                println!("[{notice}]");
            }
        }
        for card in model.cards() {
            let line = describe(card);
            if self.cards.get(&card.id) != Some(&line) {
                if let Some(line) = &line {
                    println!("{line}");
                }
                self.cards.insert(card.id, line);
            }
        }
        self.cards.retain(|id, _| model.card(*id).is_some());
    }
}

/// The line that says a card's state, if it says anything: a card whose line changes is said
/// again (a receipt's counts, a sent message stored).
fn describe(card: &app::room::Card) -> Option<String> {
    let from = printable(card.from_label());
    match &card.state {
        CardState::Sealed => Some(match card.announced {
            Some(size) => format!("[sealed file (up to {}) from someone] press Enter to open", size_in_words(size)),
            None => "[sealed message from someone] press Enter to open".to_owned(),
        }),
        CardState::Opening => None,
        CardState::Open(text) => Some(format!("{from}: {}", printable(text))),
        CardState::Unreadable => Some("[a message could not be decrypted]".to_owned()),
        CardState::Misdated(why) => Some(format!("[{why}]")),
        CardState::Refused(why) => Some(format!("[{why}]")),
        CardState::Mine { text, stored: false, .. } if card.file.is_none() => Some(format!("You: {}", printable(text))),
        CardState::Mine { stored: false, .. } => None,
        CardState::Mine { stored: true, seen: None, .. } => Some("[stored; waiting to be read]".to_owned()),
        CardState::Mine { seen: Some((viewed, of)), .. } => Some(format!("[viewed by {viewed} of {of}]")),
        CardState::Unsent { why, .. } => Some(format!("[{why}]")),
        CardState::Burned(_) => Some("[your message was read and burned]".to_owned()),
        CardState::Gone(why) => Some(format!("[a message: {}]", why.to_lowercase())),
        CardState::File(_) => card.file.as_ref().map(|file| {
            format!("{from} sent a file: {:?} ({}). /save PATH to save it", file.name, size_in_words(file.size))
        }),
        CardState::Saved => None,
    }
}

#[cfg(test)]
mod tests {
    use super::edit;

    #[test]
    fn backspace_erases_a_whole_character_and_ctrl_d_ends_only_an_empty_line() {
        let mut line = Vec::new();
        assert!(!edit(&mut line, "héé".as_bytes()));
        assert!(!edit(&mut line, &[0x7f]));
        assert_eq!(line, "hé".as_bytes());
        assert!(!edit(&mut line, &[0x08, 0x08, 0x08]));
        assert!(line.is_empty(), "nothing to erase past the start");
        assert!(!edit(&mut line, b"ok\n"));
        assert!(!edit(&mut line, &[0x7f]));
        assert_eq!(line, b"ok\n", "a sent line is not erased");
        assert!(edit(&mut line, &[0x04]), "Ctrl-D at the start of a line ends");
        let mut typing = b"half".to_vec();
        assert!(!edit(&mut typing, &[0x04]), "not in the middle of one");
        assert_eq!(typing, b"half");
    }
}
