//! A message on screen, as data: what its card shows, how long it stays, and when it was sent.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::crypto::MessageId;

/// Seconds a read, burned or gone message stays on screen before it leaves.
pub const SHOW_SECONDS: u32 = 10;

/// What a card shows.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CardState {
    /// Someone else's message, still sealed.
    Sealed,
    /// Fetching and decrypting.
    Opening,
    /// Decrypted and on screen.
    Open(String),
    /// The payload failed to open.
    Unreadable,
    /// Someone else's message that opened, but dated where no genuine message can be (this
    /// says how): a copy of an old message served again, or a sender's clock far off. Its text
    /// is not shown and it is not confirmed viewed.
    Misdated(&'static str),
    /// Someone else's message whose fetch the relay refused; the text says why.
    Refused(String),
    /// Our own message: sent (`stored` once the server confirmed), not yet read by all; `seen`
    /// is how many of how many recipients have viewed it so far.
    Mine { text: String, stored: bool, seen: Option<(u32, u32)> },
    /// Our own message the relay refused to store: its text is kept so the person can send it
    /// again, and `why` says what the relay said.
    Unsent { text: String, why: String },
    /// Our own message was read and deleted.
    Burned(String),
    /// Gone unread: expired, or read by someone else.
    Gone(&'static str),
    /// Someone else's file, downloaded and decrypted ([`Card::file`] says what it is): an
    /// image is shown; another file waits for the person to save it.
    File(FileBytes),
    /// Someone else's file, saved by the person: its bytes are the browser's now, and none
    /// are left here.
    Saved,
}

/// What a card knows of its file: from the sender's own choice, or from the opened file card.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FileInfo {
    /// As the sender named it: for the download's name and the card, never a path.
    pub name: String,
    pub mime: String,
    /// Bytes, before padding.
    pub size: u64,
    /// Chunks moved so far (uploaded, or downloaded and decrypted), of `chunks`.
    pub done: u32,
    pub chunks: u32,
}

impl FileInfo {
    /// Whether the page shows it inline: PNG, JPEG, GIF or WebP only (never SVG, which can
    /// hold script). Every other file is only offered as a download.
    pub fn is_image(&self) -> bool {
        matches!(self.mime.as_str(), "image/png" | "image/jpeg" | "image/gif" | "image/webp")
    }
}

/// A decrypted file's bytes, shared by the card and the page without copies; wiped when the
/// last holder lets go. Equal only to itself, so comparing cards never reads megabytes.
#[derive(Clone)]
pub struct FileBytes(pub Arc<Zeroizing<Vec<u8>>>);

impl PartialEq for FileBytes {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for FileBytes {}

impl fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileBytes({} bytes)", self.0.len())
    }
}

impl CardState {
    /// Someone else's message that this page may still ask to open. A misdated one opened
    /// fine: fetching it again would only bring back the same date.
    pub fn is_openable(&self) -> bool {
        matches!(self, Self::Sealed | Self::Unreadable | Self::Refused(_))
    }

    /// Someone else's message this page has not read (sealed, opening, or not shown).
    pub fn is_unread(&self) -> bool {
        matches!(self, Self::Sealed | Self::Opening | Self::Unreadable | Self::Misdated(_) | Self::Refused(_))
    }

    /// This page's own message (sending, waiting, burned, or refused).
    pub fn is_mine(&self) -> bool {
        matches!(self, Self::Mine { .. } | Self::Burned(_) | Self::Unsent { .. })
    }
}

/// One message on screen.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Card {
    pub id: MessageId,
    pub state: CardState,
    /// Seconds before the card leaves the screen, once it counts down.
    pub left: Option<u32>,
    /// When the message was sent (milliseconds since the Unix epoch, the sender's clock): from
    /// the body once opened, or this page's clock for its own. `None` while sealed.
    pub sent_at: Option<u64>,
    /// The file it carries, once known (sending, or its card opened); `None` for text.
    pub file: Option<FileInfo>,
    /// Someone else's file card, still sealed: its size as the relay announced it (the padded
    /// size, chunks × 64 KiB: at most an eighth and a chunk above the file's own), so the card
    /// can say a file waits and about how large before anyone opens it.
    pub announced: Option<u64>,
    /// Someone else's message, opened: the name its sender gave (inside the ciphertext, so
    /// only the room reads it); `None` when they gave none ([`Card::from_label`]).
    pub from: Option<String>,
    /// Seconds it stays on screen once opened, as its sender chose; `None`: [`SHOW_SECONDS`].
    pub view: Option<u32>,
}

/// What a card says of a sender who gave no name.
pub const NO_NAME: &str = "Someone";

impl Card {
    pub(crate) fn new(id: MessageId, state: CardState) -> Self {
        Self { id, state, left: None, sent_at: None, file: None, announced: None, from: None, view: None }
    }

    /// Who the card says sent it: "You" for this page's own, the sender's name once opened,
    /// else "Someone". A label anyone in the room could choose, not an identity.
    pub fn from_label(&self) -> &str {
        if self.state.is_mine() {
            "You"
        } else {
            self.from.as_deref().unwrap_or(NO_NAME)
        }
    }
}

/// How long ago `sent_at` was at `now` (both in milliseconds since the Unix epoch), as a card
/// says it: "sent 3 min ago". A date ahead of `now` by more than a minute says so, since only
/// a wrong clock or a forgery makes one.
pub fn sent_ago(sent_at: u64, now: u64) -> String {
    const MINUTE: u64 = 60_000;
    if sent_at > now.saturating_add(MINUTE) {
        return format!("dated {} in the future", span(sent_at - now));
    }
    match now.saturating_sub(sent_at) {
        age if age < MINUTE => "sent less than a minute ago".to_owned(),
        age => format!("sent {} ago", span(age)),
    }
}

/// `at` (milliseconds since the Unix epoch) as a machine-readable UTC date and time, for a
/// `<time datetime>`: "2023-11-14T22:13:20Z".
pub fn utc_datetime(at: u64) -> String {
    let (date, time) = civil(at);
    format!("{date}T{time}Z")
}

/// `at` as a person reads it on a wall clock `offset_minutes` ahead of UTC (the browser gives
/// the offset at that date, daylight saving included): "2023-11-14 23:13:20".
pub fn wall_time(at: u64, offset_minutes: i64) -> String {
    let shifted = i128::from(at) + i128::from(offset_minutes) * 60_000;
    let (date, time) = civil(u64::try_from(shifted).unwrap_or(0));
    format!("{date} {time}")
}

/// The proleptic Gregorian date and the time of day of `at`, in UTC (the days-to-civil
/// algorithm of Howard Hinnant's "chrono-Compatible Low-Level Date Algorithms").
fn civil(at: u64) -> (String, String) {
    let seconds = at / 1_000;
    let (days, of_day) = ((seconds / 86_400) as i64, seconds % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour, minute, second) = (of_day / 3_600, of_day / 60 % 60, of_day % 60);
    (format!("{year:04}-{month:02}-{day:02}"), format!("{hour:02}:{minute:02}:{second:02}"))
}

/// A size as people read it: "1.2 MB", "340 KB", "12 bytes" (decimal units, as file managers
/// show them).
pub fn size_in_words(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{} KB", b.div_ceil(1_000)),
        1 => "1 byte".to_owned(),
        b => format!("{b} bytes"),
    }
}

/// A lifetime a sender may choose, as a composer offers it: "5 minutes", "1 hour", "7 days",
/// "90 seconds" (the largest unit that divides it).
pub fn lifetime_words(seconds: u64) -> String {
    let (count, unit) = match seconds {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

/// A duration of at least a minute in the largest unit that fits, rounded down.
fn span(ms: u64) -> String {
    let minutes = ms / 60_000;
    match (minutes, minutes / 60, minutes / (60 * 24)) {
        (m, 0, _) => format!("{m} min"),
        (_, h, 0) => format!("{h} h"),
        (_, _, 1) => "1 day".to_owned(),
        (_, _, d) => format!("{d} days"),
    }
}

#[cfg(test)]
mod tests {
    use super::{lifetime_words, sent_ago, utc_datetime, wall_time};

    #[test]
    fn a_lifetime_reads_in_the_largest_unit_that_divides_it() {
        assert_eq!(lifetime_words(300), "5 minutes");
        assert_eq!(lifetime_words(3_600), "1 hour");
        assert_eq!(lifetime_words(86_400), "1 day");
        assert_eq!(lifetime_words(604_800), "7 days");
        assert_eq!(lifetime_words(90), "90 seconds");
        assert_eq!(lifetime_words(1), "1 second");
        assert_eq!(lifetime_words(5_400), "90 minutes");
    }

    const NOW: u64 = 1_750_000_000_000;
    const MIN: u64 = 60_000;

    #[test]
    fn a_send_time_reads_in_the_largest_unit_that_fits() {
        assert_eq!(sent_ago(NOW, NOW), "sent less than a minute ago");
        assert_eq!(sent_ago(NOW - MIN + 1, NOW), "sent less than a minute ago");
        assert_eq!(sent_ago(NOW - 3 * MIN - 59_000, NOW), "sent 3 min ago");
        assert_eq!(sent_ago(NOW - 59 * MIN, NOW), "sent 59 min ago");
        assert_eq!(sent_ago(NOW - 60 * MIN, NOW), "sent 1 h ago");
        assert_eq!(sent_ago(NOW - 24 * 60 * MIN, NOW), "sent 1 day ago");
        assert_eq!(sent_ago(NOW - 9 * 24 * 60 * MIN, NOW), "sent 9 days ago");
    }

    #[test]
    fn a_send_time_ahead_of_this_clock_says_so_past_a_minute() {
        assert_eq!(sent_ago(NOW + 30_000, NOW), "sent less than a minute ago");
        assert_eq!(sent_ago(NOW + 2 * 60 * MIN, NOW), "dated 2 h in the future");
    }

    #[test]
    fn a_send_time_reads_as_a_utc_datetime_and_a_wall_clock_time() {
        assert_eq!(utc_datetime(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_datetime(1_700_000_000_999), "2023-11-14T22:13:20Z");
        assert_eq!(utc_datetime(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc_datetime(4_102_444_799_000), "2099-12-31T23:59:59Z");
        assert_eq!(wall_time(1_700_000_000_000, 60), "2023-11-14 23:13:20");
        assert_eq!(wall_time(1_700_000_000_000, -5 * 60), "2023-11-14 17:13:20");
        assert_eq!(wall_time(0, -60), "1970-01-01 00:00:00", "before the epoch: clamped, never a panic");
        assert!(utc_datetime(u64::MAX).ends_with('Z'), "a forged date far ahead still formats");
    }
}
