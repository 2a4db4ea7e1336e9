//! What happens in a room, and the one text encoding an event has between instances (the bus,
//! and PostgreSQL's writes, which NOTIFY it inside their transactions).
//!
//! A notice's text carries only the sending instance, the room hash, the event kind and message
//! ids or counts: never a payload, a code or a key. (Over NATS a message's notice may add the
//! message as stored, sealed at rest, after its text: `bus/nats.rs`, "Carried messages".)

use super::ids::{InstanceId, MessageId, RoomHash};

/// The channel every instance's room events travel on.
pub const CHANNEL: &str = "ephemeral_chat_events";

/// What happened in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A message was stored and waits to be fetched: a file card names its file's chunk count
    /// (0 for text), the padded size the relay stores anyway, so a sealed card can say
    /// "Encrypted file (up to 1.3 MB)" before anyone opens it.
    Message { id: MessageId, chunks: u32 },
    /// A message was viewed by everyone who had to and deleted.
    Deleted(MessageId),
    /// A message expired unread and was deleted.
    Expired(MessageId),
    /// `viewed` of `of` recipients have viewed a message.
    Receipt { id: MessageId, viewed: u32, of: u32 },
    /// The number of connected participants is now this.
    Presence(u32),
    /// Someone joined or left (on some instance): the count is to be read again. Travels
    /// between instances instead of a count, because counts taken in concurrent transactions
    /// can arrive out of order (the relay's presence task reads them in order).
    PresenceChanged,
    /// Someone started or stopped typing.
    Typing(bool),
    /// Events may have been missed (the link to the other instances dropped): each connection
    /// re-reads what waits for it from the store. Sent between instances only over NATS, by an
    /// instance that may have failed to tell the room something (`bus/nats.rs`).
    Resync,
}

/// One room event as it travels between instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    pub instance: InstanceId,
    pub room: RoomHash,
    pub kind: EventKind,
}

impl Notice {
    /// A receipt notice up to its counts: PostgreSQL's `ec_viewed` appends ` <viewed> <of>`
    /// once it knows them, inside the transaction of the view
    /// (`migrations/postgres/0005_recipients_in_the_message_row.sql`).
    pub fn receipt_prefix(instance: InstanceId, room: &RoomHash, id: &MessageId) -> String {
        format!("{} {} receipt {}", hex::encode(instance.0), hex::encode(room.0), id.to_hex())
    }

    /// `<instance> <room> <kind> [fields]`, hex and decimal, space-separated.
    pub fn encode(&self) -> String {
        let head = format!("{} {}", hex::encode(self.instance.0), hex::encode(self.room.0));
        match self.kind {
            EventKind::Message { id, chunks: 0 } => format!("{head} message {}", id.to_hex()),
            EventKind::Message { id, chunks } => format!("{head} message {} {chunks}", id.to_hex()),
            EventKind::Deleted(id) => format!("{head} deleted {}", id.to_hex()),
            EventKind::Expired(id) => format!("{head} expired {}", id.to_hex()),
            EventKind::Receipt { id, viewed, of } => {
                format!("{} {viewed} {of}", Self::receipt_prefix(self.instance, &self.room, &id))
            }
            EventKind::Presence(_) | EventKind::PresenceChanged => format!("{head} presence"),
            EventKind::Typing(active) => format!("{head} typing {}", u8::from(active)),
            EventKind::Resync => format!("{head} resync"),
        }
    }

    /// The inverse of [`Notice::encode`]; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split(' ');
        let instance = InstanceId(decode_hex(parts.next()?)?);
        let room = RoomHash(decode_hex(parts.next()?)?);
        let kind = match parts.next()? {
            "message" => EventKind::Message {
                id: MessageId::parse(parts.next()?)?,
                // A text message's notice has no count: the encoding of instances before files.
                chunks: match parts.next() {
                    None => 0,
                    // One encoding per notice: no "0", no sign, no leading zeros.
                    Some(count) => count.parse().ok().filter(|&n: &u32| n > 0 && n.to_string() == count)?,
                },
            },
            "deleted" => EventKind::Deleted(MessageId::parse(parts.next()?)?),
            "expired" => EventKind::Expired(MessageId::parse(parts.next()?)?),
            "receipt" => EventKind::Receipt {
                id: MessageId::parse(parts.next()?)?,
                viewed: parts.next()?.parse().ok()?,
                of: parts.next()?.parse().ok()?,
            },
            "presence" => EventKind::PresenceChanged,
            "resync" => EventKind::Resync,
            "typing" => EventKind::Typing(match parts.next()? {
                "1" => true,
                "0" => false,
                _ => return None,
            }),
            _ => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self { instance, room, kind })
    }
}

fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_notice_survives_encoding() {
        let instance = InstanceId([7; 16]);
        let room = RoomHash([9; 32]);
        let id = MessageId([3; 16]);
        for kind in [
            EventKind::Message { id, chunks: 0 },
            EventKind::Message { id, chunks: 160 },
            EventKind::Deleted(id),
            EventKind::Expired(id),
            EventKind::Receipt { id, viewed: 2, of: 5 },
            EventKind::PresenceChanged,
            EventKind::Typing(true),
            EventKind::Typing(false),
            EventKind::Resync,
        ] {
            let notice = Notice { instance, room, kind };
            assert_eq!(Notice::decode(&notice.encode()), Some(notice), "{kind:?}");
        }
    }

    #[test]
    fn a_notice_carries_only_ids_and_counts() {
        let notice =
            Notice { instance: InstanceId([1; 16]), room: RoomHash([2; 32]), kind: EventKind::PresenceChanged };
        let text = notice.encode();
        assert_eq!(text, format!("{} {} presence", "01".repeat(16), "02".repeat(32)));
        assert!(text.len() < 200, "far below NOTIFY's 8000-byte limit");
    }

    #[test]
    fn malformed_notices_are_refused() {
        let good =
            Notice { instance: InstanceId([1; 16]), room: RoomHash([2; 32]), kind: EventKind::Typing(true) }.encode();
        for bad in [
            "",
            "garbage",
            &good.replace(" typing 1", " typing 2"),
            &good.replace(" typing 1", " shouting 1"),
            &good.replace(" typing 1", " message zz"),
            &good[2..],
            &good.replace(" typing 1", " resync 1"),
            &good.replace(" typing 1", &format!(" message {} 0", "03".repeat(16))),
            &good.replace(" typing 1", &format!(" message {} +5", "03".repeat(16))),
            &good.replace(" typing 1", &format!(" message {} 05", "03".repeat(16))),
            &good.replace(" typing 1", &format!(" message {} 5 5", "03".repeat(16))),
            &good.replace(" typing 1", &format!(" message {} 4294967296", "03".repeat(16))),
        ] {
            assert_eq!(Notice::decode(bad), None, "{bad:?}");
        }
    }
}
