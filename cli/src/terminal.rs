//! What the client tells the person as it goes (progress on standard error, never the
//! plaintext, which only `receive` and `chat` print, on standard output), and the clock it reads.

/// A line on standard error, unless `--quiet`.
pub fn say(quiet: bool, line: &str) {
    if !quiet {
        eprintln!("{line}");
    }
}

/// This machine's clock, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `text` as it is safe to show on a terminal: a control character (but a line break or a tab)
/// could move the cursor, retitle the window, rewrite the clipboard or hide what came before it,
/// and a bidirectional override could make text read other than it is; each is shown as `�`.
/// Text from the room is anyone's with the code, so the chat, and `receive` on a terminal, show
/// it so; `receive` into a pipe or a file passes it on byte for byte.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    if text.chars().any(unsafe_char) {
        text.chars().map(|c| if unsafe_char(c) { '\u{FFFD}' } else { c }).collect::<String>().into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_and_bidi_overrides_are_shown_not_obeyed() {
        assert_eq!(printable("plain text\nwith\ttabs"), "plain text\nwith\ttabs");
        assert_eq!(printable("\u{1b}]52;c;ZXZpbA==\u{7}"), "\u{FFFD}]52;c;ZXZpbA==\u{FFFD}");
        assert_eq!(printable("\u{1b}[2J\r"), "\u{FFFD}[2J\u{FFFD}");
        assert_eq!(printable("abc\u{202E}fdp.exe"), "abc\u{FFFD}fdp.exe");
        assert_eq!(printable("\u{9b}31m"), "\u{FFFD}31m", "a C1 control too");
    }
}
