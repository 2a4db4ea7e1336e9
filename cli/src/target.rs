//! Which room on which relay: the code (from the command line, `EPHEMERAL_CHAT_CODE` or
//! `--code-file`) and the relay (from `--relay`, the invite link, or `EPHEMERAL_CHAT_RELAY`).

use std::path::Path;

use app::crypto::RoomCode;
use app::protocol::WS_PATH;
use zeroize::Zeroizing;

use crate::failure::Failure;

/// A relay, by its origin: `https://relay.example` or `http://127.0.0.1:3000`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relay {
    origin: String,
}

impl Relay {
    /// A relay from what a person gives: its origin or any address on it (`https://relay.example`,
    /// `wss://relay.example/ws`, `relay.example:8443`, which means HTTPS).
    pub fn parse(given: &str) -> Result<Self, Failure> {
        let given = given.trim();
        let (scheme, rest) = match given.split_once("://") {
            Some(("https" | "wss", rest)) => ("https", rest),
            Some(("http" | "ws", rest)) => ("http", rest),
            Some((other, _)) => {
                return Err(Failure::Usage(format!("a relay's address starts https:// or http://, not {other}://")))
            }
            None => ("https", given),
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || host.contains(['@', ' ']) {
            return Err(Failure::Usage(format!("{given:?} is not a relay's address")));
        }
        Ok(Self { origin: format!("{scheme}://{host}") })
    }

    /// `https://relay.example`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The relay's WebSocket: `wss://relay.example/ws`.
    pub fn ws_url(&self) -> String {
        let ws = match self.origin.strip_prefix("https://") {
            Some(host) => format!("wss://{host}"),
            None => self.origin.replacen("http://", "ws://", 1),
        };
        format!("{ws}{WS_PATH}")
    }

    /// The invite link of `code` on this relay's own pages (the code in the fragment only,
    /// which browsers never send).
    pub fn invite_link(&self, code: &RoomCode) -> String {
        format!("{}/room#{}", self.origin, code.grouped())
    }
}

/// Where the code comes from, in the order they are looked at.
pub struct CodeSources<'a> {
    /// `--code-file PATH`: the file's first line.
    pub file: Option<&'a Path>,
    /// `EPHEMERAL_CHAT_CODE`.
    pub env: Option<String>,
    /// The command line's code or invite link.
    pub given: Option<String>,
}

/// The room to join and its relay.
pub struct Target {
    pub code: RoomCode,
    pub relay: Relay,
}

/// Reads the code from the first of `sources` that has one, and picks the relay: `--relay` if
/// given, else the invite link's own (a server-rendered page's link names its relay), else
/// `EPHEMERAL_CHAT_RELAY`. A bare code with none of them is a usage error.
pub fn resolve(sources: CodeSources<'_>, relay_flag: Option<&str>, relay_env: Option<&str>) -> Result<Target, Failure> {
    let text: Zeroizing<String> = Zeroizing::new(match (sources.file, sources.env, sources.given) {
        (Some(path), _, _) => {
            let read = std::fs::read_to_string(path)
                .map_err(|err| Failure::Usage(format!("cannot read the code file {}: {err}", path.display())))?;
            read.lines().next().unwrap_or_default().to_owned()
        }
        (None, Some(env), _) => env,
        (None, None, Some(given)) => given,
        (None, None, None) => {
            return Err(Failure::Usage(
                "no room code: give one (or an invite link), or set EPHEMERAL_CHAT_CODE, or pass --code-file".into(),
            ))
        }
    });
    let link_relay = link_origin(&text)?;
    let code = RoomCode::parse(&text).map_err(|err| Failure::Usage(format!("invalid room code: {err}")))?;
    let relay = match (relay_flag, link_relay, relay_env) {
        (Some(flag), _, _) => Relay::parse(flag)?,
        (None, Some(relay), _) => relay,
        (None, None, Some(env)) if !env.trim().is_empty() => Relay::parse(env)?,
        _ => {
            return Err(Failure::Usage(
                "a bare room code does not say which relay: pass --relay URL or set EPHEMERAL_CHAT_RELAY".into(),
            ))
        }
    };
    Ok(Target { code, relay })
}

/// The relay an invite link names (`https://relay.example/room#CODE`), if `text` is a link.
fn link_origin(text: &str) -> Result<Option<Relay>, Failure> {
    let text = text.trim();
    if !text.contains("://") {
        return Ok(None);
    }
    if !text.contains('#') {
        return Err(Failure::Usage("this link holds no room code (it goes after the #)".into()));
    }
    Relay::parse(text).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "000G4-0R40M-30E20-9185G-R38EW";

    fn given(text: &str) -> CodeSources<'static> {
        CodeSources { file: None, env: None, given: Some(text.to_owned()) }
    }

    #[test]
    fn a_relay_is_read_from_any_address_on_it() {
        for (given, origin, ws) in [
            ("https://relay.example", "https://relay.example", "wss://relay.example/ws"),
            ("https://relay.example/room#X", "https://relay.example", "wss://relay.example/ws"),
            ("wss://relay.example:8443/ws", "https://relay.example:8443", "wss://relay.example:8443/ws"),
            ("http://127.0.0.1:3000/", "http://127.0.0.1:3000", "ws://127.0.0.1:3000/ws"),
            ("relay.example", "https://relay.example", "wss://relay.example/ws"),
        ] {
            let relay = Relay::parse(given).unwrap();
            assert_eq!((relay.origin(), relay.ws_url().as_str()), (origin, ws), "{given}");
        }
        assert!(matches!(Relay::parse("ftp://relay.example"), Err(Failure::Usage(_))));
        assert!(matches!(Relay::parse("https://"), Err(Failure::Usage(_))));
        assert!(matches!(Relay::parse("https://user@relay.example"), Err(Failure::Usage(_))));
    }

    #[test]
    fn a_link_names_its_relay_and_a_flag_overrides_it() {
        let link = format!("http://127.0.0.1:3000/room#{CODE}");
        let target = resolve(given(&link), None, Some("https://elsewhere.example")).unwrap();
        assert_eq!(target.relay.origin(), "http://127.0.0.1:3000");
        assert_eq!(target.code.grouped(), CODE);
        let target = resolve(given(&link), Some("https://relay.example"), None).unwrap();
        assert_eq!(target.relay.origin(), "https://relay.example", "a static bundle's link: --relay says");
        assert_eq!(target.relay.invite_link(&target.code), format!("https://relay.example/room#{CODE}"));
    }

    #[test]
    fn a_bare_code_needs_a_relay() {
        assert!(matches!(resolve(given(CODE), None, None), Err(Failure::Usage(why)) if why.contains("--relay")));
        let target = resolve(given(CODE), None, Some("https://relay.example")).unwrap();
        assert_eq!(target.relay.origin(), "https://relay.example");
    }

    #[test]
    fn a_bad_code_or_a_link_without_one_is_a_usage_error() {
        let wrong = CODE.replace('W', "X");
        assert!(matches!(resolve(given(&wrong), Some("https://r.example"), None), Err(Failure::Usage(_))));
        let bare_link = "https://relay.example/room";
        assert!(matches!(resolve(given(bare_link), None, None), Err(Failure::Usage(why)) if why.contains('#')));
        let none = CodeSources { file: None, env: None, given: None };
        assert!(matches!(resolve(none, Some("https://r.example"), None), Err(Failure::Usage(_))));
    }

    #[test]
    fn the_code_file_comes_first_then_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("code");
        std::fs::write(&path, format!("{CODE}\nignored\n")).unwrap();
        let sources = CodeSources { file: Some(&path), env: Some("nonsense".into()), given: Some("more".into()) };
        assert_eq!(resolve(sources, Some("https://r.example"), None).unwrap().code.grouped(), CODE);
        let sources = CodeSources { file: None, env: Some(CODE.into()), given: Some("nonsense".into()) };
        assert_eq!(resolve(sources, Some("https://r.example"), None).unwrap().code.grouped(), CODE);
        let missing = CodeSources { file: Some(Path::new("/nonexistent/code")), env: None, given: None };
        assert!(matches!(resolve(missing, Some("https://r.example"), None), Err(Failure::Usage(_))));
    }
}
