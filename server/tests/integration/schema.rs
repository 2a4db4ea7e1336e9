//! PostgreSQL keeps a message's recipients in its own row (migration 0005): a database from
//! before keeps what waits in it, and a leave and a view at the same moment still burn.

use std::sync::Arc;
use std::time::{Duration, Instant};

use app::crypto::{MessageId, SenderId};
use app::protocol::{ClientFrame, ServerFrame};
use server::at_rest::ServerKey;
use server::domain::Participant;
use server::domain::RoomHash;
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};

use super::helpers::{new_session, spawn_app, spawn_app_on, Backend, TestDatabase, TestRoom, TEST_KEY};
use super::recipients::{fetch_and_view, three, until};

fn participant(session: &str) -> Participant {
    Participant::from_token(&MessageId::parse(session).unwrap().0)
}

/// Creates the test's database and brings it to migration `last` of the server's.
async fn migrated_up_to(db: &TestDatabase, last: i64) -> PgConnection {
    let (base, name) = db.url.rsplit_once('/').unwrap();
    let mut admin =
        format!("{base}/postgres").parse::<sqlx::postgres::PgConnectOptions>().unwrap().connect().await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await.unwrap();
    let mut conn = db.url.parse::<sqlx::postgres::PgConnectOptions>().unwrap().connect().await.unwrap();
    let mut migrator = sqlx::migrate!("../migrations/postgres");
    migrator.migrations = migrator.migrations.iter().filter(|m| m.version <= last).cloned().collect::<Vec<_>>().into();
    migrator.run(&mut conn).await.unwrap();
    conn
}

/// Before 0005 each recipient was a row of `recipients`; a message that waits across the
/// upgrade must still wait for the recipient who has not viewed it, and only for that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_waiting_across_the_upgrade_keep_their_recipients_and_views() {
    let db = Arc::new(TestDatabase::new(Backend::Postgres));
    let mut conn = migrated_up_to(&db, 4).await;
    let room = TestRoom::new();
    let hash = RoomHash(room.keys.room_id.storage_hash());
    let (alice, bob, carol) = (new_session(), new_session(), new_session());
    let (id, sealed) = room.seal("sent before the upgrade", SenderId([1; 8]));
    let body = ServerKey::from_hex(TEST_KEY).unwrap().seal(&hash.0, &id, &sealed);
    let expires_at = server::domain::now_ms() + 3_600_000;
    sqlx::query("INSERT INTO messages (room_hash, id, body, expires_at, sender) VALUES ($1, $2, $3, $4, $5)")
        .bind(&hash.0[..])
        .bind(&id.0[..])
        .bind(&body)
        .bind(expires_at)
        .bind(&participant(&alice).0[..])
        .execute(&mut conn)
        .await
        .unwrap();
    // Carol has viewed it, Bob has not.
    for (who, viewed) in [(&bob, false), (&carol, true)] {
        sqlx::query("INSERT INTO recipients (room_hash, message_id, participant, viewed) VALUES ($1, $2, $3, $4)")
            .bind(&hash.0[..])
            .bind(&id.0[..])
            .bind(&participant(who).0[..])
            .bind(viewed)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();

    // The server runs 0005 as it starts.
    let app = spawn_app_on(db.clone(), &[]).await;
    let mut conn = db.url.parse::<sqlx::postgres::PgConnectOptions>().unwrap().connect().await.unwrap();
    let (recipients, viewed_by): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
        sqlx::query_as("SELECT recipients, viewed_by FROM messages").fetch_one(&mut conn).await.unwrap();
    let mut expected = vec![participant(&bob).0.to_vec(), participant(&carol).0.to_vec()];
    expected.sort();
    assert_eq!((recipients, viewed_by), (expected, vec![participant(&carol).0.to_vec()]));
    let table: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('recipients')::TEXT").fetch_one(&mut conn).await.unwrap();
    assert_eq!(table, None, "the recipients table is gone");

    let mut carol_page = app.client().await;
    carol_page.session = carol;
    assert_eq!(carol_page.join(&room).await, (1, vec![]), "carol has viewed it: nothing waits for her");
    let mut bob_page = app.client().await;
    bob_page.session = bob;
    assert_eq!(bob_page.join(&room).await, (2, vec![id.to_hex()]));
    fetch_and_view(&mut bob_page, &room, &id).await;
    let deleted = ServerFrame::Deleted { message_id: id.to_hex() };
    assert_eq!(until(&mut carol_page, |f| matches!(f, ServerFrame::Deleted { .. })).await, deleted);
    assert_eq!(app.row_count().await, 0);
}

/// A recipient's leave and the other recipient's view of the same message at the same moment:
/// the view waits for the leave's change to the message row, then finds that its own view
/// completes the message and burns it. The test holds the leave's statements open in a
/// transaction of its own, so that the view runs into them every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_that_waits_for_a_leave_to_commit_burns_the_message() {
    let app = spawn_app(Backend::Postgres).await;
    let room = TestRoom::new();
    let (mut alice, mut bob, carol) = three(&app, &room).await;
    let (id, _) = alice.send_message(&room, "for bob and carol").await;
    until(&mut bob, |f| *f == ServerFrame::Message { message_id: id.to_hex(), chunks: 0 }).await;
    bob.send(&ClientFrame::Fetch { message_id: id.to_hex() }).await;
    until(&mut bob, |f| matches!(f, ServerFrame::Payload { .. })).await;

    let options = app.db.url.parse::<sqlx::postgres::PgConnectOptions>().unwrap();
    let (mut leaving, mut watching) = (options.connect().await.unwrap(), options.connect().await.unwrap());
    let mut leave = leaving.begin().await.unwrap();
    let hash = room.keys.room_id.storage_hash();
    let carol_row = participant(&carol.session);
    for sql in [
        "DELETE FROM participants WHERE room_hash = $1 AND participant = $2",
        "UPDATE messages SET recipients = array_remove(recipients, $2) \
         WHERE room_hash = $1 AND $2 = ANY (recipients) AND NOT $2 = ANY (viewed_by)",
    ] {
        sqlx::query(sql).bind(&hash[..]).bind(&carol_row.0[..]).execute(&mut *leave).await.unwrap();
    }

    bob.send(&ClientFrame::Viewed { message_id: id.to_hex() }).await;
    let waiting =
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let deadline = Instant::now() + Duration::from_secs(10);
    while sqlx::query_scalar::<_, i64>(waiting).fetch_one(&mut watching).await.unwrap() == 0 {
        assert!(Instant::now() < deadline, "the view did not wait for the leave");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    leave.commit().await.unwrap();

    let deleted = ServerFrame::Deleted { message_id: id.to_hex() };
    assert_eq!(
        until(&mut alice, |f| matches!(f, ServerFrame::Deleted { .. } | ServerFrame::Receipt { .. })).await,
        deleted
    );
    assert_eq!(app.row_count().await, 0);
}
