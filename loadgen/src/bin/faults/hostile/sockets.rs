//! The server's side of loopback TCP connections, as the kernel reports it in `/proc/net/tcp`:
//! whether the server still holds a connection open, and how many bytes it has written that the
//! peer has not taken (`tx_queue`). The harness and the server share a network namespace, so the
//! server's sockets are visible here without touching the server.

use std::collections::HashMap;

/// `TCP_ESTABLISHED` in `/proc/net/tcp`'s `st` column.
const ESTABLISHED: u8 = 0x01;

/// One server-side socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSide {
    pub state: u8,
    /// Bytes written and not yet acknowledged by the peer (sent or still queued).
    pub tx_queue: u64,
    /// 0 once no process holds the socket (closed, the kernel finishing it alone).
    pub inode: u64,
}

impl ServerSide {
    /// Whether the server still holds this connection open.
    pub fn is_open(&self) -> bool {
        self.state == ESTABLISHED && self.inode != 0
    }
}

/// The sockets whose local end is 127.0.0.1:`server_port`, by their peer's port.
pub fn server_sockets(server_port: u16) -> std::io::Result<HashMap<u16, ServerSide>> {
    Ok(parse(&std::fs::read_to_string("/proc/net/tcp")?, server_port))
}

fn parse(table: &str, server_port: u16) -> HashMap<u16, ServerSide> {
    let local = format!("0100007F:{server_port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(1) != Some(&local.as_str()) {
                return None;
            }
            let peer_port = u16::from_str_radix(fields.get(2)?.rsplit_once(':')?.1, 16).ok()?;
            let state = u8::from_str_radix(fields.get(3)?, 16).ok()?;
            let tx_queue = u64::from_str_radix(fields.get(4)?.split_once(':')?.0, 16).ok()?;
            let inode = fields.get(9)?.parse().ok()?;
            Some((peer_port, ServerSide { state, tx_queue, inode }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 0003E800:00000000 01:00000014 00000000  1000        0 4343 1 0000000000000000 20 4 0 10 -1
   2: 0100007F:1F90 0100007F:C351 05 00010000:00000000 01:00000014 00000000     0        0 0 1 0000000000000000 20 4 0 10 -1
   3: 0100007F:C350 0100007F:1F90 01 00000000:00000800 00:00000000 00000000  1000        0 4444 1 0000000000000000 20 4 0 10 -1
";

    #[test]
    fn the_servers_sockets_are_found_by_their_peers_port() {
        let sockets = parse(TABLE, 0x1F90);
        assert_eq!(sockets.len(), 3, "the listener (peer port 0) and the two connections; not the client's side");
        let open = sockets[&0xC350];
        assert_eq!(open, ServerSide { state: 1, tx_queue: 0x3E800, inode: 4343 });
        assert!(open.is_open());
        assert!(!sockets[&0xC351].is_open(), "closed by the server, the kernel still sending its FIN");
        assert!(parse(TABLE, 0x1F91).is_empty());
    }
}
