//! Files in the room model: the upload's window and order, the card after the last chunk, the
//! download put together in order from chunks opened in any order, the burn at the view (an
//! image) or the save (any other file), and what a cut connection does to each.

use std::collections::VecDeque;

use super::{events, frames, joined, keys, model, NOW};
use crate::crypto::file::{FileCipher, CHUNK_LEN};
use crate::crypto::message::{open, seal};
use crate::crypto::{Body, FileCard, MessageId, SealedPayload, SenderId};
use crate::protocol::{binary, ClientFrame, ErrorCode, RelayLimits, ServerFrame, FEATURE_FILES};
use crate::room::card::CardState;
use crate::room::effect::{Effect, NotSent, RoomEvent};
use crate::room::model::{RoomModel, WINDOW};

fn files_limits() -> RelayLimits {
    RelayLimits { features: vec![FEATURE_FILES.into()], max_file: 10 << 20, ..RelayLimits::default() }
}

/// A model joined to a relay that takes files, alone in the room.
fn joined_with_files() -> RoomModel {
    let mut model = model();
    model.start();
    model.on_connected();
    model.on_frame(ServerFrame::Joined {
        participants: 2,
        pending: Vec::new(),
        limits: files_limits(),
        files: Default::default(),
    });
    model
}

/// Carries out seal and open jobs at once, in Rust, as a driver without WebCrypto does; returns
/// every other effect, in order.
fn run_jobs(model: &mut RoomModel, effects: Vec<Effect>) -> Vec<Effect> {
    let mut queue: VecDeque<Effect> = effects.into();
    let mut out = Vec::new();
    while let Some(effect) = queue.pop_front() {
        match effect {
            Effect::Seal(job) => queue.extend(model.chunk_sealed(job.id, job.index, job.seal())),
            Effect::Open(job) => queue.extend(model.chunk_opened(job.id, job.index, job.open())),
            other => out.push(other),
        }
    }
    out
}

/// One step of the model, its seal and open jobs carried out.
fn step(model: &mut RoomModel, f: impl FnOnce(&mut RoomModel) -> Vec<Effect>) -> Vec<Effect> {
    let effects = f(model);
    run_jobs(model, effects)
}

fn binaries(effects: &[Effect]) -> Vec<Vec<u8>> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::SendBinary(bytes) => Some(bytes.clone()),
            _ => None,
        })
        .collect()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 256) as u8).collect()
}

#[test]
fn a_file_uploads_in_order_within_its_window_then_sends_its_card() {
    let mut model = joined_with_files();
    let bytes = pattern(17 * CHUNK_LEN); // 17 chunks: class 18
    let effects = model.send_file("scan.png", "image/png", bytes.clone(), NOW).unwrap();
    let id = model.cards().last().unwrap().id;
    assert_eq!(frames(&effects), [ClientFrame::Upload { message_id: id.to_hex(), chunks: 18 }]);
    // Nothing moves before the relay accepts the upload; then a window's worth, in order.
    let effects = step(&mut model, |m| model_uploaded(m, id, 0));
    let sent = binaries(&effects);
    assert_eq!(sent.len(), WINDOW as usize);
    for (i, frame) in sent.iter().enumerate() {
        let Some(binary::Frame::Chunk { kind: binary::UPLOAD, id: got, index, .. }) = binary::decode(frame) else {
            panic!("an upload frame")
        };
        assert_eq!((got, index), (id, i as u32));
    }
    // Each chunk stored lets one more go; the card goes after the last, and is kept until `sent`.
    let mut stored = 0;
    let mut all = sent;
    while stored < 18 {
        stored += 1;
        let effects = step(&mut model, |m| model_uploaded(m, id, stored));
        assert_eq!(model.card(id).unwrap().file.as_ref().unwrap().done, stored);
        all.extend(binaries(&effects));
        if stored == 18 {
            let [ClientFrame::Send { message_id, sealed, .. }] = &frames(&effects)[..] else { panic!("{effects:?}") };
            assert_eq!(message_id, &id.to_hex());
            let card = open(&keys(), &id, &SealedPayload::from_base64(sealed).unwrap()).unwrap();
            let file = card.file.unwrap();
            assert_eq!((file.name.as_str(), file.size, file.chunks), ("scan.png", bytes.len() as u64, 18));
            // The chunks sent open, in order, to the file.
            let cipher = FileCipher::new(&keys(), &file.id, &id, 18);
            let mut plain = Vec::new();
            for (i, frame) in all.iter().enumerate() {
                let Some(binary::Frame::Chunk { sealed, .. }) = binary::decode(frame) else { panic!() };
                plain.extend_from_slice(&cipher.open_chunk(i as u32, sealed).unwrap());
            }
            assert_eq!(&plain[..bytes.len()], &bytes[..]);
        } else {
            assert!(frames(&effects).is_empty());
        }
    }
    assert_eq!(all.len(), 18);
    assert_eq!(model.unacknowledged(), 1);
    model.on_frame(ServerFrame::Sent { message_id: id.to_hex() });
    assert_eq!(model.unacknowledged(), 0);
    assert!(matches!(model.card(id).unwrap().state, CardState::Mine { stored: true, .. }));
}

fn model_uploaded(model: &mut RoomModel, id: MessageId, chunks: u32) -> Vec<Effect> {
    model.on_frame(ServerFrame::Uploaded { message_id: id.to_hex(), chunks })
}

#[test]
fn sealed_chunks_go_out_in_order_whatever_order_they_are_sealed_in() {
    let mut model = joined_with_files();
    model.send_file("a.bin", "", pattern(3 * CHUNK_LEN), NOW).unwrap();
    let id = model.cards().last().unwrap().id;
    let effects = model_uploaded(&mut model, id, 0);
    let mut jobs: Vec<_> = effects
        .into_iter()
        .filter_map(|effect| match effect {
            Effect::Seal(job) => Some(job),
            _ => None,
        })
        .collect();
    assert_eq!(jobs.len(), 3);
    jobs.reverse();
    let mut sent = Vec::new();
    for job in jobs {
        sent.extend(binaries(&model.chunk_sealed(job.id, job.index, job.seal())));
    }
    let order: Vec<u32> = sent
        .iter()
        .map(|frame| match binary::decode(frame) {
            Some(binary::Frame::Chunk { index, .. }) => index,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(order, [0, 1, 2]);
}

#[test]
fn a_relay_without_files_or_a_file_too_large_is_refused_before_anything_moves() {
    let mut plain = joined(2);
    assert_eq!(plain.send_file("a", "", vec![1], NOW), Err(NotSent::NoFiles));
    let mut model = model();
    model.start();
    model.on_connected();
    let small = RelayLimits { max_file: 2 * CHUNK_LEN as u64, ..files_limits() };
    model.on_frame(ServerFrame::Joined {
        participants: 2,
        pending: Vec::new(),
        limits: small,
        files: Default::default(),
    });
    assert_eq!(model.send_file("big", "", pattern(2 * CHUNK_LEN + 1), NOW), Err(NotSent::FileTooLarge));
    assert!(model.notice().unwrap().contains("128 KiB"), "{:?}", model.notice());
    assert!(model.cards().is_empty());
    assert!(model.send_file("fits", "", pattern(2 * CHUNK_LEN), NOW).is_ok());
    assert_eq!(model.send_file("second", "", vec![1], NOW), Err(NotSent::Busy));
}

#[test]
fn an_upload_cut_off_offers_to_send_the_file_again_whole() {
    let mut model = joined_with_files();
    let bytes = pattern(2 * CHUNK_LEN);
    model.send_file("a.pdf", "application/pdf", bytes.clone(), NOW).unwrap();
    let id = model.cards().last().unwrap().id;
    step(&mut model, |m| model_uploaded(m, id, 0));
    step(&mut model, |m| model_uploaded(m, id, 1));
    model.on_closed();
    model.on_connected();
    let effects = model.on_frame(ServerFrame::Joined {
        participants: 2,
        pending: Vec::new(),
        limits: files_limits(),
        files: Default::default(),
    });
    assert!(frames(&effects).is_empty(), "nothing of a purged upload is sent again by itself");
    assert!(matches!(&model.card(id).unwrap().state, CardState::Unsent { why, .. } if why.contains("interrupted")));
    // "Send again": a new upload of the same bytes, with a new id.
    let effects = model.resend(id, NOW).unwrap();
    let again = model.cards().last().unwrap().id;
    assert_ne!(again, id);
    assert!(model.card(id).is_none());
    assert_eq!(frames(&effects), [ClientFrame::Upload { message_id: again.to_hex(), chunks: 2 }]);
}

#[test]
fn a_refused_upload_offers_to_send_again() {
    let mut model = joined_with_files();
    model.send_file("a.pdf", "application/pdf", pattern(10), NOW).unwrap();
    let id = model.cards().last().unwrap().id;
    model.on_frame(ServerFrame::error_about(ErrorCode::QuotaExceeded, &id.to_hex()));
    assert!(matches!(&model.card(id).unwrap().state, CardState::Unsent { .. }));
    // The next file may go.
    assert!(model.send_file("b", "", vec![1], NOW).is_ok());
}

/// A file card from someone else, and its sealed chunks.
fn peer_file(name: &str, mime: &str, bytes: &[u8]) -> (MessageId, String, Vec<Vec<u8>>) {
    let id = MessageId::generate();
    let file = FileCard::new(name, mime, bytes.len() as u64).unwrap();
    let cipher = FileCipher::new(&keys(), &file.id, &id, file.chunks);
    let chunks = (0..file.chunks).map(|i| cipher.seal_chunk(bytes, i)).collect();
    let body = Body {
        id,
        sender: SenderId([9; 8]),
        text: String::new(),
        sent_at: NOW - 1_000,
        file: Some(file),
        chosen: Default::default(),
    };
    (id, seal(&keys(), &body).unwrap().to_base64(), chunks)
}

/// Opens a peer's card: click, payload; returns the chunk requests sent.
fn open_card(model: &mut RoomModel, id: MessageId, card: &str) -> Vec<u32> {
    model.on_frame(ServerFrame::Message { message_id: id.to_hex(), chunks: 0 });
    assert_eq!(frames(&model.open(id)), [ClientFrame::Fetch { message_id: id.to_hex() }]);
    requests(&model.on_frame(ServerFrame::Payload { message_id: id.to_hex(), sealed: card.to_owned() }))
}

fn requests(effects: &[Effect]) -> Vec<u32> {
    binaries(effects)
        .iter()
        .map(|frame| match binary::decode(frame) {
            Some(binary::Frame::Request { index, .. }) => index,
            other => panic!("{other:?}"),
        })
        .collect()
}

fn chunk_frame(id: MessageId, index: u32, chunks: &[Vec<u8>]) -> Vec<u8> {
    binary::chunk(binary::CHUNK, &id, index, &chunks[index as usize])
}

#[test]
fn an_image_downloads_in_order_shows_and_is_confirmed_viewed() {
    let mut model = joined_with_files();
    let bytes = pattern(6 * CHUNK_LEN + 5); // 7 chunks
    let (id, card, chunks) = peer_file("cat.webp", "image/webp", &bytes);
    assert_eq!(open_card(&mut model, id, &card), [0, 1, 2, 3]);
    assert!(matches!(model.card(id).unwrap().state, CardState::Opening));
    assert_eq!(model.card(id).unwrap().file.as_ref().unwrap().name, "cat.webp");
    // Chunks opened out of order wait for the ones before them; the window moves on as they do.
    let mut out = step(&mut model, |m| m.on_binary(&chunk_frame(id, 1, &chunks)));
    assert!(requests(&out).is_empty(), "chunk 0 still missing");
    out = step(&mut model, |m| m.on_binary(&chunk_frame(id, 0, &chunks)));
    assert_eq!(requests(&out), [4, 5]);
    for index in 2..7 {
        out = step(&mut model, |m| m.on_binary(&chunk_frame(id, index, &chunks)));
    }
    let CardState::File(got) = &model.card(id).unwrap().state else { panic!("{:?}", model.card(id)) };
    assert_eq!(&got.0[..], &bytes[..], "the bytes shown are the bytes sent, without the zero fill");
    assert_eq!(events(&out), [RoomEvent::Opened(id)]);
    assert_eq!(frames(&out), [ClientFrame::Viewed { message_id: id.to_hex() }]);
    assert!(model.card(id).unwrap().left.is_some(), "it leaves after the view time");
}

#[test]
fn another_file_waits_to_be_saved_and_is_confirmed_viewed_when_saved() {
    let mut model = joined_with_files();
    let bytes = pattern(100);
    let (id, card, chunks) = peer_file("key.pem", "application/x-pem-file", &bytes);
    assert_eq!(open_card(&mut model, id, &card), [0]);
    let out = step(&mut model, |m| m.on_binary(&chunk_frame(id, 0, &chunks)));
    assert!(frames(&out).is_empty(), "not viewed until saved");
    assert!(matches!(model.card(id).unwrap().state, CardState::File(_)));
    let out = model.save(id);
    let [Effect::Save { name, bytes: saved }, ..] = &out[..] else { panic!("{out:?}") };
    assert_eq!((name.as_str(), &saved.0[..]), ("key.pem", &bytes[..]));
    assert_eq!(frames(&out), [ClientFrame::Viewed { message_id: id.to_hex() }]);
    assert_eq!(model.card(id).unwrap().state, CardState::Saved);
    assert!(model.save(id).is_empty(), "saved once");
}

#[test]
fn a_download_cut_off_resumes_from_the_last_whole_chunk() {
    let mut model = joined_with_files();
    let bytes = pattern(5 * CHUNK_LEN);
    let (id, card, chunks) = peer_file("a.bin", "", &bytes);
    open_card(&mut model, id, &card);
    step(&mut model, |m| m.on_binary(&chunk_frame(id, 0, &chunks)));
    step(&mut model, |m| m.on_binary(&chunk_frame(id, 1, &chunks)));
    model.on_closed();
    model.on_connected();
    let effects = model.on_frame(ServerFrame::Joined {
        participants: 2,
        pending: vec![id.to_hex()],
        limits: files_limits(),
        files: Default::default(),
    });
    assert_eq!(frames(&effects), [ClientFrame::Fetch { message_id: id.to_hex() }]);
    // The card again: only what is missing is asked for.
    let effects = model.on_frame(ServerFrame::Payload { message_id: id.to_hex(), sealed: card });
    assert_eq!(requests(&effects), [2, 3, 4]);
    for index in 2..5 {
        step(&mut model, |m| m.on_binary(&chunk_frame(id, index, &chunks)));
    }
    let CardState::File(got) = &model.card(id).unwrap().state else { panic!() };
    assert_eq!(&got.0[..], &bytes[..]);
}

#[test]
fn a_chunk_that_fails_to_open_makes_the_file_unreadable_and_nothing_is_confirmed() {
    let mut model = joined_with_files();
    let (id, card, mut chunks) = peer_file("a.bin", "", &pattern(10));
    open_card(&mut model, id, &card);
    chunks[0][5] ^= 1;
    let out = step(&mut model, |m| m.on_binary(&chunk_frame(id, 0, &chunks)));
    assert_eq!(model.card(id).unwrap().state, CardState::Unreadable);
    assert!(frames(&out).is_empty());
    // Frames for a file not being opened, or malformed, are ignored.
    assert!(model.on_binary(&chunk_frame(MessageId::generate(), 0, &chunks)).is_empty());
    assert!(model.on_binary(&[3, 1, 2]).is_empty());
}

#[test]
fn a_sealed_file_card_says_how_large_a_file_waits_before_anyone_opens_it() {
    let mut model = joined_with_files();
    let (file, text) = (MessageId::generate(), MessageId::generate());
    model.on_frame(ServerFrame::Message { message_id: file.to_hex(), chunks: 20 });
    let card = model.card(file).unwrap();
    assert_eq!((&card.state, card.announced), (&CardState::Sealed, Some(20 * CHUNK_LEN as u64)));
    assert_eq!(model.announcement, "New encrypted file. 1 waiting to be opened.");
    model.on_frame(ServerFrame::Message { message_id: text.to_hex(), chunks: 0 });
    assert_eq!(model.card(text).unwrap().announced, None, "a text message announces no size");
    assert_eq!(model.announcement, "New encrypted message. 2 waiting to be opened.");
    // A file card first heard of on (re)joining: `joined.files` names its size.
    let listed = MessageId::generate();
    let pending = vec![file.to_hex(), text.to_hex(), listed.to_hex()];
    let files = [(listed.to_hex(), 3)].into_iter().collect();
    model.on_frame(ServerFrame::Joined { participants: 2, pending, limits: files_limits(), files });
    assert_eq!(model.card(listed).unwrap().announced, Some(3 * CHUNK_LEN as u64));
    assert_eq!(model.card(file).unwrap().announced, Some(20 * CHUNK_LEN as u64), "still as first announced");
}
