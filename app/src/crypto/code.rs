//! Room codes: 120 random bits in Crockford base32 plus one check symbol (spec v1).
//!
//! The canonical code is 25 symbols; people see it as five groups of five joined by `-`.
//! Parsing is forgiving about what people do (spaces, dashes, lower case, `O`/`I`/`L`, a whole
//! invite link) and strict about what they mean: a typo is caught 31 times in 32.

use std::fmt;

use zeroize::Zeroizing;

use super::primitives::sha256;
use super::random_bytes;

/// Crockford's base32 alphabet: no `I`, `L`, `O` or `U`.
pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Symbols carrying the 120 random bits.
const DATA_SYMBOLS: usize = 24;
/// Data symbols plus the check symbol.
pub const CODE_LEN: usize = DATA_SYMBOLS + 1;
/// Random bytes in a code (120 bits = 24 symbols of 5 bits).
const CODE_BYTES: usize = 15;

/// Why a typed or pasted code was refused. One variant: people need to retype, not a diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid room code")]
pub struct CodeError;

/// A canonical room code. The secret from which every room key is derived: it never leaves the
/// browser, is wiped from memory when dropped and is never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct RoomCode(Zeroizing<String>);

impl RoomCode {
    /// Makes a fresh code from 15 CSPRNG bytes.
    pub fn generate() -> Self {
        Self::from_entropy(&Zeroizing::new(random_bytes::<CODE_BYTES>()))
    }

    /// Writes 15 bytes as a code: one 120-bit big-endian integer, 24 symbols of 5 bits (most
    /// significant first), then the check symbol.
    pub fn from_entropy(bytes: &[u8; CODE_BYTES]) -> Self {
        let mut acc = Zeroizing::new(0u128);
        for &b in bytes {
            *acc = (*acc << 8) | u128::from(b);
        }
        let mut symbols = Zeroizing::new(String::with_capacity(CODE_LEN));
        for i in (0..DATA_SYMBOLS).rev() {
            let index = ((*acc >> (5 * i)) & 0x1f) as usize;
            symbols.push(char::from(ALPHABET[index]));
        }
        let check = check_symbol(symbols.as_bytes());
        symbols.push(char::from(check));
        Self(symbols)
    }

    /// Parses what a person typed or pasted: a code, a grouped code or an invite link.
    pub fn parse(input: &str) -> Result<Self, CodeError> {
        let input = match input.find('#') {
            Some(at) => &input[at + 1..],
            None => input,
        };
        let mut symbols = Zeroizing::new(String::with_capacity(CODE_LEN));
        for c in input.chars() {
            let c = match c {
                ' ' | '\t' | '\r' | '\n' | '-' => continue,
                'O' | 'o' => '0',
                'I' | 'i' | 'L' | 'l' => '1',
                c => c.to_ascii_uppercase(),
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) || symbols.len() == CODE_LEN {
                return Err(CodeError);
            }
            symbols.push(c);
        }
        let bytes = symbols.as_bytes();
        if bytes.len() != CODE_LEN || check_symbol(&bytes[..DATA_SYMBOLS]) != bytes[DATA_SYMBOLS] {
            return Err(CodeError);
        }
        Ok(Self(symbols))
    }

    /// The 25 canonical symbols: the PBKDF2 password.
    pub fn canonical(&self) -> &str {
        &self.0
    }

    /// Five groups of five joined by `-`, for people to read and compare.
    pub fn grouped(&self) -> String {
        group(self.canonical(), 5)
    }
}

impl fmt::Debug for RoomCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoomCode(<redacted>)")
    }
}

/// `ALPHABET[SHA-256(data symbols)[0] >> 3]`.
fn check_symbol(data_symbols: &[u8]) -> u8 {
    ALPHABET[usize::from(sha256(&[data_symbols])[0] >> 3)]
}

/// Splits `s` into groups of `size` characters joined by `-`.
pub(crate) fn group(s: &str, size: usize) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / size);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && i % size == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_code_parses_back_to_itself() {
        for _ in 0..100 {
            let code = RoomCode::generate();
            assert_eq!(RoomCode::parse(code.canonical()), Ok(code.clone()));
            assert_eq!(RoomCode::parse(&code.grouped()), Ok(code));
        }
    }

    #[test]
    fn all_ones_entropy_is_all_z_symbols() {
        let code = RoomCode::from_entropy(&[0xff; CODE_BYTES]);
        assert!(code.canonical().starts_with(&"Z".repeat(DATA_SYMBOLS)));
    }

    #[test]
    fn sloppy_input_is_forgiven() {
        let code = RoomCode::from_entropy(&[0x42; CODE_BYTES]);
        let sloppy = format!(" {} ", code.grouped().to_lowercase().replace('-', " - "));
        assert_eq!(RoomCode::parse(&sloppy), Ok(code.clone()));
        let link = format!("https://chat.example/room#{}", code.grouped());
        assert_eq!(RoomCode::parse(&link), Ok(code));
    }

    #[test]
    fn look_alike_letters_map_to_digits() {
        // A code whose symbols include 0 and 1, typed with O and l.
        let code = RoomCode::from_entropy(&[0; CODE_BYTES]);
        let typed = code.canonical().replacen('0', "O", 3).replacen('0', "o", 3);
        assert_eq!(RoomCode::parse(&typed), Ok(code));
    }

    #[test]
    fn a_wrong_check_symbol_is_refused() {
        let code = RoomCode::generate();
        let (data, check) = code.canonical().split_at(DATA_SYMBOLS);
        let wrong = ALPHABET.iter().find(|&&c| c != check.as_bytes()[0]).copied();
        let typo = format!("{data}{}", char::from(wrong.unwrap()));
        assert_eq!(RoomCode::parse(&typo), Err(CodeError));
    }

    #[test]
    fn most_single_symbol_typos_are_caught() {
        let code = RoomCode::from_entropy(&[0x5a; CODE_BYTES]);
        let mut caught = 0;
        let mut total = 0;
        for pos in 0..DATA_SYMBOLS {
            for &sym in ALPHABET {
                let mut bytes = code.canonical().as_bytes().to_vec();
                if bytes[pos] == sym {
                    continue;
                }
                bytes[pos] = sym;
                total += 1;
                if RoomCode::parse(std::str::from_utf8(&bytes).unwrap()).is_err() {
                    caught += 1;
                }
            }
        }
        // 31 in 32 expected; allow sampling noise but fail on a check that catches nothing.
        assert!(caught * 100 / total >= 93, "caught {caught} of {total}");
    }

    #[test]
    fn wrong_lengths_and_foreign_symbols_are_refused() {
        let code = RoomCode::generate();
        assert_eq!(RoomCode::parse(""), Err(CodeError));
        assert_eq!(RoomCode::parse(&code.canonical()[1..]), Err(CodeError));
        assert_eq!(RoomCode::parse(&format!("{}0", code.canonical())), Err(CodeError));
        assert_eq!(RoomCode::parse(&code.canonical().replacen(|_| true, "U", 1)), Err(CodeError));
        assert_eq!(RoomCode::parse("ÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄ"), Err(CodeError));
    }

    #[test]
    fn debug_output_never_shows_the_code() {
        let code = RoomCode::generate();
        assert!(!format!("{code:?}").contains(code.canonical()));
    }
}
