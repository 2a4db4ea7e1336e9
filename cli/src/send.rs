//! `ephemeral-chat send`: seals a text (or a file) for the room, waits until the relay stores
//! it (or, with `--wait-read`, until it is read and burned), and says so on standard error.

use std::io::Read as _;
use std::path::Path;

use app::crypto::message::MAX_BODY_LEN;
use app::protocol::ErrorCode;
use app::room::{CardState, ConnectionState, NotSent, RoomEvent};
use zeroize::Zeroizing;

use crate::failure::Failure;
use crate::room::{Choices, Room};
use crate::terminal::{now_ms, say};

/// What to send.
pub enum What {
    Text(Zeroizing<String>),
    File { name: String, mime: String, bytes: Vec<u8> },
}

impl What {
    /// The text read from standard input: at most the largest message, UTF-8, without its one
    /// trailing newline (as `echo` and a shell's `$(…)` would add and take away).
    pub fn from_stdin(input: impl std::io::Read) -> Result<Self, Failure> {
        let mut bytes = Zeroizing::new(Vec::new());
        let read = input.take(MAX_BODY_LEN as u64 + 2).read_to_end(&mut bytes);
        read.map_err(|err| Failure::Other(format!("cannot read standard input: {err}")))?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.len() > MAX_BODY_LEN {
            return Err(Failure::refused(
                ErrorCode::BadSize,
                "standard input is larger than a message can be: use --file",
            ));
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Failure::Usage("standard input is not UTF-8 text: send it with --file".into()))?;
        Ok(Self::Text(Zeroizing::new(text.to_owned())))
    }

    /// A file to send: its bytes, its name (the last part of the path only: a label for the
    /// receiver, never a path) and a media type from its extension.
    pub fn from_file(path: &Path) -> Result<Self, Failure> {
        let bytes =
            std::fs::read(path).map_err(|err| Failure::Other(format!("cannot read {}: {err}", path.display())))?;
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
        Ok(Self::File { mime: media_type(&name).to_owned(), name, bytes })
    }
}

/// The media type a page shows a file as, by its extension; any other file is offered to save.
fn media_type(name: &str) -> &'static str {
    let extension = name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        _ => "",
    }
}

/// Sends `what` to the room with `choices`; done once stored, or once read and burned with
/// `wait_read`.
pub async fn run(room: &mut Room, what: What, choices: Choices, wait_read: bool, quiet: bool) -> Result<(), Failure> {
    room.choose(&choices)?;
    let now = now_ms();
    let mut not_sent = None;
    let is_file = matches!(what, What::File { .. });
    let events = room
        .act(|model| {
            let sent = match what {
                What::Text(text) => model.send(&text, now),
                What::File { name, mime, bytes } => model.send_file(&name, &mime, bytes, now),
            };
            sent.unwrap_or_else(|why| {
                not_sent = Some(why);
                Vec::new()
            })
        })
        .await?;
    if let Some(why) = not_sent {
        let notice = room.model().notice().unwrap_or_default().to_owned();
        return Err(match why {
            NotSent::Empty => Failure::Usage("nothing to send: the message is empty".into()),
            NotSent::TooLong => Failure::refused(ErrorCode::BadSize, notice),
            NotSent::NoFiles | NotSent::FileTooLarge => Failure::refused(ErrorCode::FileTooLarge, notice),
            NotSent::NotInRoom | NotSent::Busy => Failure::Other(why.to_string()),
        });
    }
    let id = room.model().cards().last().map(|card| card.id).expect("invariant: a sent message has a card");
    if is_file {
        say(quiet, "Sealed the file; uploading it…");
    }
    let mut shown_percent = 0;
    let mut events = events;
    loop {
        for event in &events {
            match event {
                RoomEvent::Stored(stored) if *stored == id => {
                    if !wait_read {
                        say(quiet, "Stored: it waits to be read.");
                        return Ok(());
                    }
                    say(quiet, "Stored: waiting for it to be read…");
                }
                RoomEvent::Burned(burned) if *burned == id => {
                    say(quiet, "Read, and burned.");
                    return Ok(());
                }
                RoomEvent::Expired(expired) if *expired == id => {
                    return Err(Failure::TimedOut("the message expired unread".into()));
                }
                RoomEvent::Refused(code) => {
                    if let Some(CardState::Unsent { why, .. }) = room.model().card(id).map(|card| &card.state) {
                        return Err(Failure::refused(*code, why.trim_start_matches("Not sent: ").to_owned()));
                    }
                }
                _ => {}
            }
        }
        if room.model().connection() == ConnectionState::Unreachable {
            return Err(Failure::Unreachable("lost the relay and cannot reach it again".into()));
        }
        if let Some(file) = room.model().card(id).and_then(|card| card.file.as_ref()) {
            let percent = (100 * file.done).checked_div(file.chunks).unwrap_or(0);
            if percent >= shown_percent + 10 && percent < 100 {
                shown_percent = percent - percent % 10;
                say(quiet, &format!("Uploading: {percent} %"));
            }
        }
        events = room.next().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_input_loses_one_trailing_newline_and_must_fit_a_message() {
        let text = |input: &[u8]| match What::from_stdin(input) {
            Ok(What::Text(text)) => Ok(text.to_string()),
            Ok(What::File { .. }) => unreachable!(),
            Err(failure) => Err(failure.exit_code()),
        };
        assert_eq!(text(b"s3cret\n"), Ok("s3cret".into()));
        assert_eq!(text(b"s3cret\r\n"), Ok("s3cret".into()));
        assert_eq!(text(b"two\nlines\n\n"), Ok("two\nlines\n".into()));
        assert_eq!(text(&vec![b'x'; MAX_BODY_LEN + 1]), Err(4), "too large");
        assert_eq!(text(&[0xff, 0xfe]), Err(2), "not UTF-8");
    }

    #[test]
    fn a_file_is_named_by_its_last_part_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scan.PNG");
        std::fs::write(&path, b"\x89PNG").unwrap();
        let Ok(What::File { name, mime, bytes }) = What::from_file(&path) else { panic!() };
        assert_eq!((name.as_str(), mime.as_str(), bytes.len()), ("scan.PNG", "image/png", 4));
        assert_eq!(media_type("notes"), "");
        assert!(matches!(What::from_file(&dir.path().join("missing")), Err(Failure::Other(_))));
    }
}
