//! A minimal Steam A2S_INFO probe: the second, game-independent sign of life of a
//! server (the query port answers even when RCon is busy or disabled).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

const HEADER: [u8; 4] = [0xFF; 4];
const INFO_REQUEST: &[u8] = b"TSource Engine Query\0";

/// Sends A2S_INFO (answering a challenge if the server asks for one) and reports
/// whether a well-formed info reply (type `0x49`) arrived within `timeout`.
pub async fn info_answers(addr: SocketAddr, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, query(addr))
        .await
        .unwrap_or(false)
}

async fn query(addr: SocketAddr) -> bool {
    let bind: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let Ok(socket) = UdpSocket::bind(bind).await else {
        return false;
    };
    if socket.connect(addr).await.is_err() {
        return false;
    }
    let mut request = HEADER.to_vec();
    request.extend_from_slice(INFO_REQUEST);
    let mut buf = [0u8; 1400];
    for _ in 0..2 {
        if socket.send(&request).await.is_err() {
            return false;
        }
        let Ok(n) = socket.recv(&mut buf).await else {
            return false;
        };
        match buf.get(..n) {
            Some([0xFF, 0xFF, 0xFF, 0xFF, 0x49, ..]) => return true,
            Some([0xFF, 0xFF, 0xFF, 0xFF, 0x41, c0, c1, c2, c3]) => {
                request.truncate(HEADER.len() + INFO_REQUEST.len());
                request.extend_from_slice(&[*c0, *c1, *c2, *c3]);
            }
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A responder that demands a challenge first, like current Source servers.
    async fn responder(challenge: bool) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1400];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let has_challenge = n == 4 + INFO_REQUEST.len() + 4;
                let reply: &[u8] = if challenge && !has_challenge {
                    &[0xFF, 0xFF, 0xFF, 0xFF, 0x41, 1, 2, 3, 4]
                } else {
                    &[0xFF, 0xFF, 0xFF, 0xFF, 0x49, 17, b'x', 0]
                };
                let _ = socket.send_to(reply, peer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn answers_with_and_without_challenge() {
        assert!(info_answers(responder(false).await, Duration::from_secs(2)).await);
        assert!(info_answers(responder(true).await, Duration::from_secs(2)).await);
    }

    #[tokio::test]
    async fn silence_is_no_answer() {
        let quiet = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = quiet.local_addr().unwrap();
        assert!(!info_answers(addr, Duration::from_millis(200)).await);
    }
}
