//! Files (spec v2): upload, notice, download and burn on both backends; every bad input with its
//! own code, leaving other transfers intact; an interrupted upload purged and an interrupted
//! download resumed; a file uploaded through one instance downloaded through another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use app::crypto::file::{chunks_for, FileCipher, CHUNK_LEN, SEALED_CHUNK_LEN};
use app::crypto::message::{open, seal};
use app::crypto::{Body, FileCard, MessageId, SealedPayload, SenderId};
use app::protocol::{binary, ClientFrame, ErrorCode, ServerFrame, FEATURE_FILES, FEATURE_TTL};
use futures::StreamExt as _;
use tokio_tungstenite::tungstenite::Message;

use super::helpers::{contains, spawn_app_on, spawn_app_with, Backend, Client, TestApp, TestDatabase, TestRoom};

/// A file a test sends: its bytes (random, so no window of them can be in a stored row by
/// chance), its card and its sealed chunks.
struct TestFile {
    bytes: Vec<u8>,
    id: MessageId,
    card: SealedPayload,
    chunks: Vec<Vec<u8>>,
}

impl TestFile {
    fn new(room: &TestRoom, size: usize) -> Self {
        let mut bytes = vec![0u8; size];
        for block in bytes.chunks_mut(32) {
            let random: [u8; 32] = app::crypto::random_bytes();
            block.copy_from_slice(&random[..block.len()]);
        }
        let id = MessageId::generate();
        let file = FileCard::new("report \"final\".pdf", "application/pdf", size as u64).unwrap();
        let cipher = FileCipher::new(&room.keys, &file.id, &id, file.chunks);
        let chunks = (0..file.chunks).map(|i| cipher.seal_chunk(&bytes, i)).collect();
        let body = Body {
            id,
            sender: SenderId([7; 8]),
            text: String::new(),
            sent_at: 1,
            file: Some(file),
            chosen: Default::default(),
        };
        Self { bytes, id, card: seal(&room.keys, &body).unwrap(), chunks }
    }

    fn hex(&self) -> String {
        self.id.to_hex()
    }

    fn count(&self) -> u32 {
        self.chunks.len() as u32
    }
}

/// What a client reads next: a protocol frame or a binary chunk frame.
#[derive(Debug)]
enum Read {
    Frame(ServerFrame),
    Chunk(Vec<u8>),
}

async fn read(client: &mut Client) -> Read {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), client.ws_mut().next())
            .await
            .expect("a frame within the timeout")
            .expect("socket still open")
            .expect("frame reads");
        match message {
            Message::Text(text) => return Read::Frame(serde_json::from_str(text.as_str()).unwrap()),
            Message::Binary(bytes) => return Read::Chunk(bytes.to_vec()),
            _ => continue,
        }
    }
}

/// The next frame that is not a presence count or a typing notice.
async fn frame(client: &mut Client) -> ServerFrame {
    loop {
        match read(client).await {
            Read::Frame(ServerFrame::Presence { .. }) => continue,
            Read::Frame(frame) => return frame,
            Read::Chunk(bytes) => panic!("expected a frame, got a chunk of {} bytes", bytes.len()),
        }
    }
}

async fn expect_error(client: &mut Client, code: ErrorCode) {
    match frame(client).await {
        ServerFrame::Error { code: got, .. } => assert_eq!(got, code),
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

async fn send_binary(client: &mut Client, bytes: Vec<u8>) {
    client.send_raw(Message::Binary(bytes.into())).await;
}

/// Uploads `file` whole and sends its card: `uploaded` after each chunk, then `sent`.
async fn upload(client: &mut Client, file: &TestFile) {
    begin(client, file).await;
    for (index, chunk) in file.chunks.iter().enumerate() {
        send_binary(client, binary::chunk(binary::UPLOAD, &file.id, index as u32, chunk)).await;
        assert_eq!(frame(client).await, ServerFrame::Uploaded { message_id: file.hex(), chunks: index as u32 + 1 });
    }
    client.send(&ClientFrame::Send { message_id: file.hex(), sealed: file.card.to_base64(), ttl: None }).await;
    assert_eq!(frame(client).await, ServerFrame::Sent { message_id: file.hex() });
}

async fn begin(client: &mut Client, file: &TestFile) {
    client.send(&ClientFrame::Upload { message_id: file.hex(), chunks: file.count() }).await;
    assert_eq!(frame(client).await, ServerFrame::Uploaded { message_id: file.hex(), chunks: 0 });
}

/// Fetches the card, then downloads and opens chunks `from..`; returns the card's body and the
/// plaintext of those chunks.
async fn download(client: &mut Client, room: &TestRoom, id: &MessageId, from: u32) -> (Body, Vec<u8>) {
    client.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    let ServerFrame::Payload { sealed, .. } = frame(client).await else { panic!("expected the card") };
    let body = open(&room.keys, id, &SealedPayload::from_base64(&sealed).unwrap()).expect("the card opens");
    let file = body.file.clone().expect("a file card");
    let cipher = FileCipher::new(&room.keys, &file.id, id, file.chunks);
    let mut plain = Vec::new();
    for index in from..file.chunks {
        client.send_raw(Message::Binary(binary::request(id, index).into())).await;
        let chunk = loop {
            match read(client).await {
                Read::Chunk(bytes) => break bytes,
                Read::Frame(ServerFrame::Presence { .. }) => continue,
                Read::Frame(other) => panic!("expected chunk {index}, got {other:?}"),
            }
        };
        let Some(binary::Frame::Chunk { kind: binary::CHUNK, id: got, index: at, sealed }) = binary::decode(&chunk)
        else {
            panic!("not a chunk frame")
        };
        assert_eq!((got, at), (*id, index));
        plain.extend_from_slice(&cipher.open_chunk(index, sealed).expect("the chunk opens"));
    }
    (body, plain)
}

/// Rows of `table` left in the test's database.
async fn rows(app: &TestApp, table: &str) -> u64 {
    count(&app.db, table).await
}

async fn count(db: &TestDatabase, table: &str) -> u64 {
    db.count(table).await
}

/// Every stored chunk body, straight from the database.
async fn chunk_bodies(db: &TestDatabase) -> Vec<Vec<u8>> {
    db.bodies("chunks").await
}

/// Waits (bounded) until `table` has `n` rows.
async fn until_rows(db: &TestDatabase, table: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = count(db, table).await;
        if now == n {
            return;
        }
        assert!(Instant::now() < deadline, "{table} holds {now} rows, not {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn a_file_uploads_notifies_downloads_and_burns(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let mut bob = app.client().await;
    bob.send(&ClientFrame::Join { room_id: room.keys.room_id.to_hex(), session: bob.session.clone() }).await;
    let ServerFrame::Joined { limits, .. } = frame(&mut bob).await else { panic!("joined") };
    assert_eq!(limits.features, [FEATURE_FILES, FEATURE_TTL]);
    assert_eq!(limits.max_file, 10 << 20);
    // Three chunks and a bit: four chunks, the last mostly zero fill.
    let file = TestFile::new(&room, 3 * CHUNK_LEN + 1000);
    assert_eq!(file.count(), 4);
    upload(&mut alice, &file).await;
    assert_eq!(frame(&mut bob).await, ServerFrame::Message { message_id: file.hex(), chunks: file.count() });
    assert_eq!(rows(&app, "chunks").await, 4);
    // What the relay stores is neither the file nor the client's ciphertext.
    for body in chunk_bodies(&app.db).await {
        assert_eq!(body.len(), 1 + 12 + SEALED_CHUNK_LEN + 16);
        for chunk in &file.chunks {
            assert!(!contains(&body, &chunk[..32]), "a client ciphertext is stored as sent");
        }
        assert!(!contains(&body, &file.bytes[..32]) && !contains(&body, &file.bytes[CHUNK_LEN..CHUNK_LEN + 32]));
    }
    let (body, plain) = download(&mut bob, &room, &file.id, 0).await;
    let card = body.file.unwrap();
    assert_eq!(
        (card.name.as_str(), card.mime.as_str(), card.size),
        ("report \"final\".pdf", "application/pdf", file.bytes.len() as u64)
    );
    assert_eq!(&plain[..file.bytes.len()], &file.bytes[..], "the bytes downloaded are the bytes sent");
    bob.send(&ClientFrame::Viewed { message_id: file.hex() }).await;
    assert_eq!(frame(&mut bob).await, ServerFrame::Deleted { message_id: file.hex() });
    assert_eq!(frame(&mut alice).await, ServerFrame::Deleted { message_id: file.hex() });
    // Burned: no message row, no chunk row.
    assert_eq!((rows(&app, "messages").await, rows(&app, "chunks").await), (0, 0));
    // A request after the burn is refused, and the connection lives on.
    bob.send_raw(Message::Binary(binary::request(&file.id, 0).into())).await;
    expect_error(&mut bob, ErrorCode::UnknownMessage).await;
    bob.assert_quiet_and_alive().await;
}

pub async fn an_unopened_file_expires_with_its_chunks(backend: Backend) {
    let app = spawn_app_with(backend, &["--message-ttl", "2s"]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (_bob, _, _) = app.joined(&room).await;
    let file = TestFile::new(&room, 100);
    upload(&mut alice, &file).await;
    assert_eq!(rows(&app, "chunks").await, 1);
    loop {
        if let ServerFrame::Expired { message_id } = frame(&mut alice).await {
            assert_eq!(message_id, file.hex());
            break;
        }
    }
    assert_eq!((rows(&app, "messages").await, rows(&app, "chunks").await), (0, 0));
}

/// A chunk that no longer opens at rest (corrupt on the disk, say) makes its file unreadable for
/// good: the request is refused, the file goes as expired (card and chunks), the room hears so,
/// and the connection lives on.
pub async fn a_file_whose_chunk_fails_at_rest_is_purged_as_expired(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (mut bob, _, _) = app.joined(&room).await;
    let file = TestFile::new(&room, 2 * CHUNK_LEN);
    upload(&mut alice, &file).await;
    assert_eq!(frame(&mut bob).await, ServerFrame::Message { message_id: file.hex(), chunks: file.count() });
    let damaged = match backend {
        Backend::Sqlite => "UPDATE chunks SET body = zeroblob(length(body)) WHERE idx = 1",
        Backend::Postgres => "UPDATE chunks SET body = decode(repeat('00', octet_length(body)), 'hex') WHERE idx = 1",
    };
    assert_eq!(app.db.execute(damaged).await, 1);
    // The card and the first chunk open; the second does not.
    bob.send(&ClientFrame::Fetch { message_id: file.hex() }).await;
    assert!(matches!(frame(&mut bob).await, ServerFrame::Payload { .. }));
    bob.send_raw(Message::Binary(binary::request(&file.id, 0).into())).await;
    assert!(matches!(read(&mut bob).await, Read::Chunk(_)));
    bob.send_raw(Message::Binary(binary::request(&file.id, 1).into())).await;
    let expired = ServerFrame::Expired { message_id: file.hex() };
    let (mut refused, mut told) = (false, false);
    while !(refused && told) {
        match frame(&mut bob).await {
            ServerFrame::Error { code: ErrorCode::UnknownMessage, .. } if !refused => refused = true,
            other if other == expired && !told => told = true,
            other => panic!("expected the refusal and the expiry, got {other:?}"),
        }
    }
    assert_eq!(frame(&mut alice).await, expired);
    assert_eq!((rows(&app, "messages").await, rows(&app, "chunks").await), (0, 0));
    bob.send_raw(Message::Binary(binary::request(&file.id, 0).into())).await;
    expect_error(&mut bob, ErrorCode::UnknownMessage).await;
    bob.assert_quiet_and_alive().await;
}

pub async fn every_bad_transfer_gets_its_own_code_and_leaves_other_transfers_intact(backend: Backend) {
    let app = spawn_app_with(backend, &["--max-file-size", "512KiB", "--rate-limit-burst", "100"]).await;
    let (room, other_room) = (TestRoom::new(), TestRoom::new());
    let (mut alice, _, _) = app.joined(&room).await;
    let (mut bob, _, _) = app.joined(&room).await;
    let (mut carol, _, _) = app.joined(&other_room).await;
    // Two uploads under way, in two rooms, each one chunk in.
    let (file, carols) = (TestFile::new(&room, 2 * CHUNK_LEN), TestFile::new(&other_room, 2 * CHUNK_LEN));
    begin(&mut alice, &file).await;
    begin(&mut carol, &carols).await;
    for (client, f) in [(&mut alice, &file), (&mut carol, &carols)] {
        send_binary(client, binary::chunk(binary::UPLOAD, &f.id, 0, &f.chunks[0])).await;
        assert_eq!(frame(client).await, ServerFrame::Uploaded { message_id: f.hex(), chunks: 1 });
    }
    let upload_of = |id: &MessageId, chunks| ClientFrame::Upload { message_id: id.to_hex(), chunks };
    // Too large (9 chunks of 64 KiB past 512 KiB), and a count that is not a size class.
    alice.send(&upload_of(&MessageId::generate(), 9)).await;
    expect_error(&mut alice, ErrorCode::FileTooLarge).await;
    alice.send(&upload_of(&MessageId::generate(), 17)).await;
    expect_error(&mut alice, ErrorCode::BadChunks).await;
    alice.send(&upload_of(&MessageId::generate(), 0)).await;
    expect_error(&mut alice, ErrorCode::BadChunks).await;
    // A second upload while the first is unfinished.
    alice.send(&upload_of(&MessageId::generate(), 1)).await;
    expect_error(&mut alice, ErrorCode::UploadBusy).await;
    // Out of order: chunk 0 again, and a chunk past the next.
    send_binary(&mut alice, binary::chunk(binary::UPLOAD, &file.id, 0, &file.chunks[0])).await;
    expect_error(&mut alice, ErrorCode::ChunkOutOfOrder).await;
    // (a chunk for index 5 of a two-chunk file is out of order too)
    send_binary(&mut alice, binary::chunk(binary::UPLOAD, &file.id, 5, &file.chunks[1])).await;
    expect_error(&mut alice, ErrorCode::ChunkOutOfOrder).await;
    // The wrong size.
    send_binary(&mut alice, binary::chunk(binary::UPLOAD, &file.id, 1, &file.chunks[1][1..])).await;
    expect_error(&mut alice, ErrorCode::BadChunkSize).await;
    // An unknown file, and a chunk of another room's upload.
    send_binary(&mut alice, binary::chunk(binary::UPLOAD, &MessageId::generate(), 0, &file.chunks[1])).await;
    expect_error(&mut alice, ErrorCode::UnknownUpload).await;
    send_binary(&mut alice, binary::chunk(binary::UPLOAD, &carols.id, 1, &carols.chunks[1])).await;
    expect_error(&mut alice, ErrorCode::UnknownUpload).await;
    // A card before its last chunk; a malformed binary frame.
    alice.send(&ClientFrame::Send { message_id: file.hex(), sealed: file.card.to_base64(), ttl: None }).await;
    expect_error(&mut alice, ErrorCode::UploadIncomplete).await;
    send_binary(&mut alice, vec![9; 30]).await;
    expect_error(&mut alice, ErrorCode::BinaryFrame).await;
    // A card with no upload at all.
    let stray = TestFile::new(&room, 10);
    bob.send(&ClientFrame::Send { message_id: stray.hex(), sealed: stray.card.to_base64(), ttl: None }).await;
    expect_error(&mut bob, ErrorCode::UploadIncomplete).await;
    // Both uploads finish as if nothing had happened.
    for (client, f) in [(&mut alice, &file), (&mut carol, &carols)] {
        send_binary(client, binary::chunk(binary::UPLOAD, &f.id, 1, &f.chunks[1])).await;
        assert_eq!(frame(client).await, ServerFrame::Uploaded { message_id: f.hex(), chunks: 2 });
        client.send(&ClientFrame::Send { message_id: f.hex(), sealed: f.card.to_base64(), ttl: None }).await;
        assert_eq!(frame(client).await, ServerFrame::Sent { message_id: f.hex() });
    }
    assert_eq!(frame(&mut bob).await, ServerFrame::Message { message_id: file.hex(), chunks: file.count() });
    // A second upload of a used id.
    alice.send(&upload_of(&file.id, 2)).await;
    expect_error(&mut alice, ErrorCode::IdConflict).await;
    // Requests: before fetching the card; past the last chunk; another room's file.
    bob.send_raw(Message::Binary(binary::request(&file.id, 0).into())).await;
    expect_error(&mut bob, ErrorCode::NotFetched).await;
    let (_, plain) = download(&mut bob, &room, &file.id, 0).await;
    assert_eq!(&plain[..file.bytes.len()], &file.bytes[..]);
    bob.send_raw(Message::Binary(binary::request(&file.id, 2).into())).await;
    expect_error(&mut bob, ErrorCode::BadChunkIndex).await;
    bob.send_raw(Message::Binary(binary::request(&carols.id, 0).into())).await;
    expect_error(&mut bob, ErrorCode::NotFetched).await;
    // Alice may not fetch her own file's chunks (she cannot fetch its card).
    alice.send(&ClientFrame::Fetch { message_id: file.hex() }).await;
    expect_error(&mut alice, ErrorCode::OwnMessage).await;
    // Everyone's connection lives on, and the file still burns as a message does.
    bob.send(&ClientFrame::Viewed { message_id: file.hex() }).await;
    assert_eq!(frame(&mut bob).await, ServerFrame::Deleted { message_id: file.hex() });
    assert_eq!(frame(&mut alice).await, ServerFrame::Deleted { message_id: file.hex() });
    for client in [&mut alice, &mut bob, &mut carol] {
        client.assert_quiet_and_alive().await;
    }
    // Carol's file waits in her room (nobody else there: open), untouched.
    assert_eq!(rows(&app, "chunks").await, 2);
}

pub async fn an_interrupted_upload_is_purged_and_its_quota_given_back(backend: Backend) {
    // Room for one 4-chunk file per address, not two.
    let app = spawn_app_with(backend, &["--max-stored-bytes-per-address", "300KiB"]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (_bob, _, _) = app.joined(&room).await;
    let file = TestFile::new(&room, 4 * CHUNK_LEN);
    begin(&mut alice, &file).await;
    for index in 0..2 {
        send_binary(&mut alice, binary::chunk(binary::UPLOAD, &file.id, index, &file.chunks[index as usize])).await;
        assert_eq!(frame(&mut alice).await, ServerFrame::Uploaded { message_id: file.hex(), chunks: index + 1 });
    }
    // Over the quota while this one holds its share: refused before any chunk moves.
    let (mut second, _, _) = app.joined(&room).await;
    let big = TestFile::new(&room, 4 * CHUNK_LEN);
    second.send(&ClientFrame::Upload { message_id: big.hex(), chunks: big.count() }).await;
    expect_error(&mut second, ErrorCode::QuotaExceeded).await;
    assert_eq!(rows(&app, "chunks").await, 2);
    // The uploader's connection drops: what it stored goes, never offered to anyone.
    drop(alice);
    until_rows(&app.db, "chunks", 0).await;
    assert_eq!(rows(&app, "messages").await, 0);
    // Its share is given back: the same file can be sent again whole.
    let (mut again, _, _) = app.joined(&room).await;
    let resent = TestFile::new(&room, 4 * CHUNK_LEN);
    upload(&mut again, &resent).await;
    assert_eq!(rows(&app, "chunks").await, 4);
}

pub async fn a_file_past_the_relays_storage_is_refused_before_any_upload(backend: Backend) {
    let app = spawn_app_with(backend, &["--max-stored-bytes", "200KiB"]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let file = TestFile::new(&room, 4 * CHUNK_LEN);
    alice.send(&ClientFrame::Upload { message_id: file.hex(), chunks: file.count() }).await;
    expect_error(&mut alice, ErrorCode::StorageFull).await;
    assert_eq!(rows(&app, "chunks").await, 0);
    // A smaller one fits.
    let small = TestFile::new(&room, CHUNK_LEN);
    upload(&mut alice, &small).await;
}

pub async fn an_interrupted_download_resumes_from_the_last_whole_chunk(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let (mut bob, _, _) = app.joined(&room).await;
    let file = TestFile::new(&room, 3 * CHUNK_LEN);
    upload(&mut alice, &file).await;
    assert_eq!(frame(&mut bob).await, ServerFrame::Message { message_id: file.hex(), chunks: file.count() });
    // Bob's page gets chunk 0, then its connection drops.
    let session = bob.session.clone();
    let (_, first) = download_first(&mut bob, &room, &file).await;
    drop(bob);
    // A text message waits beside it meanwhile.
    let (text, _) = alice.send_message(&room, "and a note").await;
    // It comes back as the same participant and asks for the rest only. `joined` lists what
    // waits, and the file card's chunk count (its sealed card shows the size) but no text's.
    let mut bob = app.client().await;
    bob.session = session;
    bob.send(&ClientFrame::Join { room_id: room.keys.room_id.to_hex(), session: bob.session.clone() }).await;
    let ServerFrame::Joined { mut pending, files, .. } = frame(&mut bob).await else { panic!("joined") };
    pending.sort();
    let mut expected = vec![file.hex(), text.to_hex()];
    expected.sort();
    assert_eq!(pending, expected);
    assert_eq!(files, [(file.hex(), file.count())].into_iter().collect());
    let (_, rest) = download(&mut bob, &room, &file.id, 1).await;
    assert_eq!([first, rest].concat()[..file.bytes.len()], file.bytes[..]);
    bob.send(&ClientFrame::Viewed { message_id: file.hex() }).await;
    assert_eq!(frame(&mut bob).await, ServerFrame::Deleted { message_id: file.hex() });
    assert_eq!(rows(&app, "chunks").await, 0);
}

/// The card and the first chunk only.
async fn download_first(client: &mut Client, room: &TestRoom, file: &TestFile) -> (Body, Vec<u8>) {
    client.send(&ClientFrame::Fetch { message_id: file.hex() }).await;
    let ServerFrame::Payload { sealed, .. } = frame(client).await else { panic!("expected the card") };
    let body = open(&room.keys, &file.id, &SealedPayload::from_base64(&sealed).unwrap()).unwrap();
    let card = body.file.clone().unwrap();
    client.send_raw(Message::Binary(binary::request(&file.id, 0).into())).await;
    let Read::Chunk(chunk) = read(client).await else { panic!("expected chunk 0") };
    let Some(binary::Frame::Chunk { sealed, .. }) = binary::decode(&chunk) else { panic!("a chunk frame") };
    let cipher = FileCipher::new(&room.keys, &card.id, &file.id, card.chunks);
    let plain = cipher.open_chunk(0, sealed).unwrap().to_vec();
    (body, plain)
}

pub async fn a_relay_without_files_says_so_and_refuses_them(backend: Backend) {
    let app = spawn_app_with(backend, &["--max-file-size", "0"]).await;
    let room = TestRoom::new();
    let mut alice = app.client().await;
    alice.send(&ClientFrame::Join { room_id: room.keys.room_id.to_hex(), session: alice.session.clone() }).await;
    let ServerFrame::Joined { limits, .. } = frame(&mut alice).await else { panic!("joined") };
    assert!(limits.features == [FEATURE_TTL] && limits.max_file == 0, "{limits:?}");
    let file = TestFile::new(&room, 10);
    alice.send(&ClientFrame::Upload { message_id: file.hex(), chunks: 1 }).await;
    expect_error(&mut alice, ErrorCode::FileTooLarge).await;
    // (A frame as long as a chunk's is past this relay's hard limit: it would drop the socket.)
    send_binary(&mut alice, binary::chunk(binary::UPLOAD, &file.id, 0, &file.chunks[0][..1000])).await;
    expect_error(&mut alice, ErrorCode::BinaryFrame).await;
    alice.assert_quiet_and_alive().await;
}

pub async fn a_transfer_is_held_to_its_byte_budget(backend: Backend) {
    // 256 KiB a second: eight chunks after the first second's burst take at least a second more.
    let app = spawn_app_with(backend, &["--transfer-bytes-per-second", "256KiB"]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = app.joined(&room).await;
    let file = TestFile::new(&room, 8 * CHUNK_LEN);
    let start = Instant::now();
    upload(&mut alice, &file).await;
    let took = start.elapsed();
    // 8 × 65552 bytes against a 262144-byte burst and 262144 bytes a second: the last chunk
    // waits (524416 − 262144) / 262144 ≈ 1.0 s.
    assert!(took >= Duration::from_millis(950), "8 chunks at 256 KiB/s took {took:?}");
    // Messages are not held to it: the frame budget is apart.
    alice.assert_quiet_and_alive().await;
}

pub async fn a_flood_of_refused_file_frames_is_cut_off_as_any_flood(backend: Backend) {
    let app = spawn_app_with(backend, &["--rate-limit-per-second", "1", "--rate-limit-burst", "5"]).await;
    let room = TestRoom::new();
    let (mut flooder, _, _) = app.joined(&room).await; // the join took one token: 4 left
    let (mut honest, _, _) = app.joined(&TestRoom::new()).await;
    // Requests for a file never fetched: well-formed, cheap to send, each refused. Sent at once.
    let stray = MessageId::generate();
    for _ in 0..20 {
        flooder.send_raw(Message::Binary(binary::request(&stray, 0).into())).await;
    }
    let mut codes = Vec::new();
    loop {
        match flooder.closed_or_frame().await {
            Ok(code) => {
                assert_eq!(code, Some(1008), "{codes:?}");
                break;
            }
            Err(ServerFrame::Error { code, .. }) => codes.push(code),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    // Refused while the frame budget lasted, then rate-limited, then cut off before the end.
    assert_eq!(codes.first(), Some(&ErrorCode::NotFetched), "{codes:?}");
    assert!(codes.contains(&ErrorCode::RateLimited), "{codes:?}");
    assert!(codes.len() < 20, "{codes:?}");
    honest.assert_quiet_and_alive().await;
}

/// A file uploaded through one instance downloads through another (PostgreSQL only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_uploaded_through_one_instance_downloads_through_another() {
    let db = Arc::new(TestDatabase::new(Backend::Postgres));
    let a = spawn_app_on(db.clone(), &[]).await;
    let b = spawn_app_on(db, &[]).await;
    let room = TestRoom::new();
    let (mut alice, _, _) = a.joined(&room).await;
    let (mut bob, _, _) = b.joined(&room).await;
    let file = TestFile::new(&room, 2 * CHUNK_LEN + 5);
    upload(&mut alice, &file).await;
    assert_eq!(frame(&mut bob).await, ServerFrame::Message { message_id: file.hex(), chunks: file.count() });
    let (_, plain) = download(&mut bob, &room, &file.id, 0).await;
    assert_eq!(&plain[..file.bytes.len()], &file.bytes[..]);
    bob.send(&ClientFrame::Viewed { message_id: file.hex() }).await;
    assert_eq!(frame(&mut bob).await, ServerFrame::Deleted { message_id: file.hex() });
    assert_eq!(frame(&mut alice).await, ServerFrame::Deleted { message_id: file.hex() });
    assert_eq!((count(&a.db, "chunks").await, count(&a.db, "messages").await), (0, 0));
}

#[test]
fn the_test_files_pad_as_the_spec_says() {
    assert_eq!(chunks_for(3 * CHUNK_LEN as u64 + 1000), Some(4));
}

on_both_backends!(
    a_file_uploads_notifies_downloads_and_burns,
    an_unopened_file_expires_with_its_chunks,
    a_file_whose_chunk_fails_at_rest_is_purged_as_expired,
    every_bad_transfer_gets_its_own_code_and_leaves_other_transfers_intact,
    an_interrupted_upload_is_purged_and_its_quota_given_back,
    a_file_past_the_relays_storage_is_refused_before_any_upload,
    an_interrupted_download_resumes_from_the_last_whole_chunk,
    a_relay_without_files_says_so_and_refuses_them,
    a_transfer_is_held_to_its_byte_budget,
    a_flood_of_refused_file_frames_is_cut_off_as_any_flood,
);
