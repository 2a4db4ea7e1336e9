//! `ephemeral-chat new`: a fresh room code from this machine's CSPRNG, its invite link on the
//! relay given, its fingerprint, and with `--qr` the link as a QR code in terminal blocks.

use app::crypto::{RoomCode, RoomKeys};
use qrcodegen::{QrCode, QrCodeEcc};

use crate::target::Relay;

/// What `new` prints: the code, the link (when a relay is given) and the fingerprint, and the
/// QR code of the link (or of the code) with `qr`.
pub fn run(relay: Option<&Relay>, qr: bool) -> String {
    let code = RoomCode::generate();
    let keys = RoomKeys::derive(&code);
    let mut out = format!("Code:        {}\n", code.grouped());
    let link = relay.map(|relay| relay.invite_link(&code));
    match &link {
        Some(link) => out += &format!("Link:        {link}\n"),
        None => out += "Link:        (pass --relay URL to print the invite link)\n",
    }
    out += &format!("Fingerprint: {}\n", keys.fingerprint.display());
    if qr {
        out += &blocks(link.as_deref().unwrap_or(code.canonical()));
    }
    out
}

/// `text` as a QR code drawn with half blocks, two modules a character cell, light on dark as a
/// terminal shows it (each light module is a lit half block), with the quiet zone a reader needs.
pub fn blocks(text: &str) -> String {
    let Ok(qr) = QrCode::encode_text(text, QrCodeEcc::Medium) else { return String::new() };
    const QUIET: i32 = 2;
    let size = qr.size();
    let light = |x: i32, y: i32| !(0..size).contains(&x) || !(0..size).contains(&y) || !qr.get_module(x, y);
    let mut out = String::new();
    let mut y = -QUIET;
    while y < size + QUIET {
        for x in -QUIET..size + QUIET {
            out.push(match (light(x, y), light(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_prints_a_valid_code_its_link_on_the_relay_and_its_fingerprint() {
        let relay = Relay::parse("https://relay.example").unwrap();
        let out = run(Some(&relay), false);
        let line = |label: &str| {
            out.lines().find_map(|line| line.strip_prefix(label)).map(str::trim).unwrap_or_default().to_owned()
        };
        let code = RoomCode::parse(&line("Code:")).expect("a valid code");
        assert_eq!(line("Link:"), format!("https://relay.example/room#{}", code.grouped()));
        assert_eq!(line("Fingerprint:"), RoomKeys::derive(&code).fingerprint.display());
        assert_ne!(run(None, false), out, "each code is fresh");
        assert!(run(None, false).contains("pass --relay"));
    }

    #[test]
    fn the_qr_code_is_drawn_with_its_quiet_zone() {
        let drawn = blocks("https://relay.example/room#000G4-0R40M-30E20-9185G-R38EW");
        let rows: Vec<&str> = drawn.lines().collect();
        let width = rows[0].chars().count();
        assert!(rows.iter().all(|row| row.chars().count() == width), "a square of cells");
        assert!(rows[0].chars().all(|c| c == '█'), "the quiet zone above is light");
        assert!(drawn.contains(' ') && drawn.contains('▀'), "dark modules drawn");
    }
}
