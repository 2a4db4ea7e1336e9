//! How the terminal client fails: one line on standard error, and an exit code a script can
//! branch on (`--help` lists them).

use app::protocol::ErrorCode;

/// Why a command did not do what it was asked, by exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// 2: the command line is wrong, or the room code is not valid.
    #[error("{0}")]
    Usage(String),
    /// 3: the relay cannot be reached (or is no relay).
    #[error("{0}")]
    Unreachable(String),
    /// 4: the relay refused: its error code (`room_full`, `quota_exceeded`, `bad_size`, …) and
    /// what it means.
    #[error("refused by the relay: {message} ({code})")]
    Refused { code: String, message: String },
    /// 5: what was awaited did not happen within `--timeout` (or the message expired unread).
    #[error("{0}")]
    TimedOut(String),
    /// 1: anything else (a file that cannot be written, a message that cannot be decrypted).
    #[error("{0}")]
    Other(String),
}

impl Failure {
    /// The process's exit status for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Other(_) => 1,
            Self::Usage(_) => 2,
            Self::Unreachable(_) => 3,
            Self::Refused { .. } => 4,
            Self::TimedOut(_) => 5,
        }
    }

    /// The relay's refusal `code`, said as the relay says it.
    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Refused { code: code_name(code), message: message.into() }
    }
}

/// An error code as it travels: `room_full`.
pub fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_documented_exit_code() {
        assert_eq!(Failure::Other(String::new()).exit_code(), 1);
        assert_eq!(Failure::Usage(String::new()).exit_code(), 2);
        assert_eq!(Failure::Unreachable(String::new()).exit_code(), 3);
        assert_eq!(Failure::refused(ErrorCode::RoomFull, "full").exit_code(), 4);
        assert_eq!(Failure::TimedOut(String::new()).exit_code(), 5);
    }

    #[test]
    fn a_refusal_names_the_relays_code() {
        let refused = Failure::refused(ErrorCode::QuotaExceeded, "too much waits");
        assert_eq!(refused.to_string(), "refused by the relay: too much waits (quota_exceeded)");
    }
}
