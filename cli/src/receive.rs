//! `ephemeral-chat receive`: waits for the next message, opens it (the person's act of viewing:
//! it burns), prints its text on standard output and says who sent it on standard error. A file
//! is written only where `--output` says, and not opened at all without it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use app::crypto::MessageId;
use app::room::{card::sent_ago, CardState, ConnectionState, RoomEvent};

use crate::failure::Failure;
use crate::room::Room;
use crate::terminal::{now_ms, printable, say};

/// Where a received file goes: a new file at `path` (never one that exists), or standard
/// output for `-`.
pub enum Output {
    Stdout,
    Path(PathBuf),
}

impl Output {
    pub fn parse(given: &Path) -> Self {
        if given == Path::new("-") {
            Self::Stdout
        } else {
            Self::Path(given.to_owned())
        }
    }

    /// Opens where the file goes, before the file is opened: so a path that cannot be written
    /// fails before anything is burned. Created new, readable by its owner only.
    fn prepare(&self) -> Result<Box<dyn std::io::Write>, Failure> {
        match self {
            Self::Stdout => Ok(Box::new(std::io::stdout())),
            Self::Path(path) => {
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let file: File = options
                    .open(path)
                    .map_err(|err| Failure::Other(format!("cannot create {}: {err}", path.display())))?;
                Ok(Box::new(file))
            }
        }
    }
}

/// Receives the next message (every waiting one with `all`).
pub async fn run(room: &mut Room, all: bool, output: Option<Output>, quiet: bool) -> Result<(), Failure> {
    let mut output = output;
    // The file being opened, and where it goes.
    let mut writing: Option<(MessageId, Box<dyn std::io::Write>)> = None;
    let mut handled: HashSet<MessageId> = HashSet::new();
    let mut opened: HashSet<MessageId> = HashSet::new();
    let mut received = 0;
    let mut waiting_said = false;
    loop {
        // Open what waits, in order: text at once, a file only where --output says.
        let sealed: Vec<(MessageId, bool)> = room
            .model()
            .cards()
            .iter()
            .filter(|card| card.state == CardState::Sealed && !handled.contains(&card.id))
            .map(|card| (card.id, card.announced.is_some()))
            .collect();
        for (id, is_file) in sealed {
            if opened.len() > received && !all {
                break; // one at a time without --all
            }
            if is_file {
                match output.take() {
                    Some(to) if writing.is_none() => writing = Some((id, to.prepare()?)),
                    other => {
                        output = other;
                        handled.insert(id);
                        say(quiet, "A file waits: it is left unopened (pass --output PATH to receive it).");
                        continue;
                    }
                }
            }
            handled.insert(id);
            opened.insert(id);
            room.act(|model| model.open(id)).await?;
        }
        if opened.len() == received && !waiting_said {
            say(quiet, "Waiting for a message…");
            waiting_said = true;
        }
        let events = room.next().await?;
        for event in events {
            match event {
                RoomEvent::Opened(id) => show(room, id, &mut writing, quiet).await?,
                // The relay confirmed the view: burned, or counted while others still have to.
                RoomEvent::Burned(id) | RoomEvent::Counted(id) if opened.contains(&id) => {
                    received += 1;
                    if !all && received == 1 {
                        return Ok(());
                    }
                }
                RoomEvent::Unreadable(id) if opened.contains(&id) => {
                    return Err(Failure::Other("a message could not be decrypted: it was altered".into()));
                }
                RoomEvent::Misdated(id) if opened.contains(&id) => {
                    let why = match room.model().card(id).map(|card| &card.state) {
                        Some(CardState::Misdated(why)) => *why,
                        _ => "misdated",
                    };
                    return Err(Failure::Other(format!("a message was not shown: {why}")));
                }
                _ => {}
            }
        }
        if room.model().connection() == ConnectionState::Unreachable {
            return Err(Failure::Unreachable("lost the relay and cannot reach it again".into()));
        }
        // With --all: done once everything opened is confirmed and nothing else waits.
        let sealed_left = room.model().cards().iter().any(|c| c.state == CardState::Sealed && !handled.contains(&c.id));
        if all && received > 0 && received == opened.len() && !sealed_left {
            return Ok(());
        }
    }
}

/// A message opened: its text to standard output, who and when to standard error; a file to
/// where it goes (and, for a file a page would offer to save, the save that burns it).
async fn show(
    room: &mut Room,
    id: MessageId,
    writing: &mut Option<(MessageId, Box<dyn std::io::Write>)>,
    quiet: bool,
) -> Result<(), Failure> {
    let Some(card) = room.model().card(id).cloned() else { return Ok(()) };
    let when = card.sent_at.map(|at| sent_ago(at, now_ms())).unwrap_or_default();
    match (&card.state, &card.file) {
        (CardState::Open(text), _) => {
            say(quiet, &format!("From {}, {when}:", printable(card.from_label())));
            // Exactly the text into a pipe or a file; on a terminal, nothing it could obey.
            let mut stdout = std::io::stdout().lock();
            let text = if stdout.is_terminal() { printable(text) } else { text.into() };
            let written = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
            written.map_err(|err| Failure::Other(format!("cannot write to standard output: {err}")))?;
        }
        (CardState::File(bytes), Some(file)) => {
            let Some((_, mut to)) = writing.take().filter(|(writing, _)| *writing == id) else { return Ok(()) };
            to.write_all(&bytes.0)
                .and_then(|()| to.flush())
                .map_err(|err| Failure::Other(format!("cannot write the file: {err}")))?;
            say(
                quiet,
                &format!(
                    "From {}, {when}: the file {:?} ({} bytes) is written.",
                    printable(card.from_label()),
                    file.name,
                    file.size
                ),
            );
            // A picture was confirmed viewed as it opened; another file is once it is saved.
            if !file.is_image() {
                room.act(|model| model.save(id)).await?;
            }
        }
        _ => {}
    }
    Ok(())
}
