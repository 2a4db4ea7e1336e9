//! The room-code parser (what people type or paste, and the URL fragment). Nothing may panic;
//! a code that parses must come back as itself from its displayed and canonical forms.
#![no_main]

use app::crypto::RoomCode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(code) = RoomCode::parse(text) else { return };
    assert_eq!(code.canonical().len(), 25);
    let grouped = RoomCode::parse(&code.grouped()).expect("a displayed code parses");
    assert_eq!(grouped.canonical(), code.canonical());
    let canonical = RoomCode::parse(code.canonical()).expect("a canonical code parses");
    assert_eq!(canonical.canonical(), code.canonical());
});
